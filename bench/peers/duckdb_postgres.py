"""Peer of burrow's import (bench row 10b): DuckDB reads the workbook with its excel extension
(`read_xlsx`) and inserts into Postgres through its postgres extension (binary COPY).

Usage: duckdb_postgres.py FILE.xlsx POSTGRES_URL TABLE
The table exists (the bench creates it: id bigint, then five text columns) and is empty; the
bench times this process from start to exit and counts the rows in Postgres afterwards.

The extensions come from the PyPI packages duckdb-ext-excel and duckdb-ext-postgres: their files
are found through the installed packages' file lists and LOADed by path, and autoloading and
installing are switched off, so nothing is downloaded at run time.
"""

import importlib.metadata
import sys

import duckdb


def extension_file(package: str, name: str) -> str:
    """The path of `{name}.duckdb_extension` shipped by the installed `package`."""
    for file in importlib.metadata.files(package) or []:
        if file.name == f"{name}.duckdb_extension":
            return str(file.locate())
    raise SystemExit(f"{package} ships no {name}.duckdb_extension")


def main() -> None:
    path, url, table = sys.argv[1:4]
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"LOAD '{extension_file('duckdb-ext-excel', 'excel')}'")
    con.execute(f"LOAD '{extension_file('duckdb-ext-postgres', 'postgres_scanner')}'")
    # libpq accepts the URL as a connection string; ATTACH takes no parameters, so it is quoted
    # as an SQL literal.
    con.execute("ATTACH '{}' AS pg (TYPE postgres)".format(url.replace("'", "''")))
    # The id as a 64-bit integer (read_xlsx gives numbers as doubles), the rest as text, as
    # burrow's importer converts them.
    rows = con.execute(
        f"""
        INSERT INTO pg.public.{table} (id, first_name, last_name, email, gender, ip_address)
        SELECT CAST("Id" AS BIGINT), CAST("FirstName" AS VARCHAR), CAST("LastName" AS VARCHAR),
               CAST("Email" AS VARCHAR), CAST("Gender" AS VARCHAR), CAST("IpAddress" AS VARCHAR)
        FROM read_xlsx(?, header = true)
        """,
        [path],
    ).fetchone()
    print(f"duckdb {duckdb.__version__}: {rows[0] if rows else '?'} rows inserted")


if __name__ == "__main__":
    main()

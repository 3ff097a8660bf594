"""Peer of burrow's import (bench row 10a): polars reads the workbook with its calamine engine
(fastexcel) and writes it to Postgres with ADBC (adbc-driver-postgresql, which uses COPY).

Usage: polars_adbc.py FILE.xlsx POSTGRES_URL TABLE
The table exists (the bench creates it: id bigint, then five text columns) and is empty; the
bench times this process from start to exit and counts the rows in Postgres afterwards.
"""

import sys

import polars as pl

# The sheet's headers -> the table's columns (the people sheet of burrow's fixtures).
COLUMNS = {
    "Id": "id",
    "FirstName": "first_name",
    "LastName": "last_name",
    "Email": "email",
    "Gender": "gender",
    "IpAddress": "ip_address",
}


def main() -> None:
    path, url, table = sys.argv[1:4]
    frame = pl.read_excel(path, engine="calamine")
    # Cast as burrow's importer converts: the id to a 64-bit integer (Excel stores numbers as
    # doubles), everything else as text.
    frame = frame.select(
        [pl.col("Id").cast(pl.Int64).alias("id")]
        + [pl.col(h).cast(pl.Utf8).alias(c) for h, c in COLUMNS.items() if h != "Id"]
    )
    written = frame.write_database(
        table, connection=url, engine="adbc", if_table_exists="append"
    )
    print(f"polars {pl.__version__}: {frame.height} rows read, {written} written")


if __name__ == "__main__":
    main()

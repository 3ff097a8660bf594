//! Import profiles against a real Postgres: typed columns from spreadsheet cells and CSV text,
//! the four modes (append, replace, upsert, insert_new), keys repeated in one file, the sheet
//! and header row found or given, and the table's own refusals.

use burrow_shared::import::{
    import_file, ImportError, ImportOptions, ImportReport, ImportRequest, OnError, Profile,
    SheetChoice,
};
use burrow_shared::progress::Progress;
use burrow_shared::testing::TestEnv;
use burrow_shared::{NewJob, KIND_IMPORT_XLSX};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PRODUCTS: &str = r#"
    name = "products"
    table = "products"
    mode = "upsert"
    key = ["sku"]
    date_formats = ["%d/%m/%Y"]
    [[columns]]
    name = "sku"
    header = "SKU"
    aliases = ["article no"]
    required = true
    [[columns]]
    name = "price"
    type = "numeric(10,2)"
    required = true
    [[columns]]
    name = "in_stock"
    type = "boolean"
    default = "false"
    [[columns]]
    name = "launched"
    type = "date"
    [[columns]]
    name = "status"
    type = "one_of"
    values = ["active", "retired"]
    default = "active"
"#;

async fn products_table(env: &TestEnv) {
    sqlx::query(
        "CREATE TABLE products (sku text PRIMARY KEY, price numeric(10,2) NOT NULL, \
         in_stock boolean NOT NULL, launched date, status text NOT NULL CONSTRAINT retired_is_free CHECK (status <> 'retired' OR price = 0))",
    )
    .execute(&env.db)
    .await
    .expect("table");
}

fn profile(mode: &str) -> Profile {
    Profile::from_toml(
        "products.toml",
        &PRODUCTS.replace("\"upsert\"", &format!("{mode:?}")),
    )
    .expect("profile")
}

async fn run(
    env: &TestEnv,
    profile: &Profile,
    file: &[u8],
    sheet: Option<SheetChoice>,
    on_error: OnError,
) -> Result<ImportReport, ImportError> {
    let job = NewJob::new(KIND_IMPORT_XLSX).file("f", b"unused".to_vec());
    let job: Uuid = env.insert_job(job).await.expect("job").id;
    let mut tx = env.db.begin().await?;
    let request = ImportRequest {
        profile,
        sheet: sheet.as_ref(),
        header_row: None,
    };
    let options = ImportOptions {
        on_error,
        ..ImportOptions::default()
    };
    let (progress, cancel) = (Progress::default(), CancellationToken::new());
    let report = import_file(
        &mut tx,
        job,
        file.to_vec(),
        request,
        &options,
        &progress,
        &cancel,
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}

async fn products(env: &TestEnv) -> Vec<(String, String, bool, Option<String>, String)> {
    sqlx::query_as(
        "SELECT sku, price::text, in_stock, launched::text, status FROM products ORDER BY sku",
    )
    .fetch_all(&env.db)
    .await
    .expect("rows")
}

#[tokio::test]
async fn upsert_inserts_new_keys_and_updates_existing_ones() {
    let env = TestEnv::new().await.expect("services");
    products_table(&env).await;
    let upsert = profile("upsert");
    let first = b"SKU;Price;In stock;Launched\nA-1;10;yes;2024-01-31\nB-2;2,5;no;\n";
    // "2,5" is not a number: the row is refused, the file with it.
    let err = run(&env, &upsert, first, None, OnError::Reject)
        .await
        .expect_err("bad price");
    assert!(
        err.to_string()
            .contains("row 3, column price (cell B3): expected a number"),
        "{err}"
    );
    assert!(products(&env).await.is_empty(), "nothing of a refused file");

    let first = b"SKU;Price;In stock;Launched\nA-1;10;yes;2024-01-31\nB-2;2.5;no;\n";
    let report = run(&env, &upsert, first, None, OnError::Reject)
        .await
        .expect("imports");
    assert_eq!((report.rows, report.written), (2, 2));
    let second = b"article no,price,launched\nB-2, 3.999 ,31/12/2023\nC-3,1234.0,\n";
    let report = run(&env, &upsert, second, None, OnError::Reject)
        .await
        .expect("upserts");
    assert_eq!((report.rows, report.written), (2, 2));
    assert_eq!(
        products(&env).await,
        vec![
            (
                "A-1".into(),
                "10.00".into(),
                true,
                Some("2024-01-31".into()),
                "active".into()
            ),
            // Updated: every column of the profile, defaults included.
            (
                "B-2".into(),
                "4.00".into(),
                false,
                Some("2023-12-31".into()),
                "active".into()
            ),
            ("C-3".into(), "1234.00".into(), false, None, "active".into()),
        ]
    );
}

#[tokio::test]
async fn insert_new_keeps_existing_rows_and_counts_what_it_wrote() {
    let env = TestEnv::new().await.expect("services");
    products_table(&env).await;
    run(
        &env,
        &profile("append"),
        b"sku,price\nA-1,1\n",
        None,
        OnError::Reject,
    )
    .await
    .expect("append");
    let report = run(
        &env,
        &profile("insert_new"),
        b"sku,price\nA-1,99\nB-2,2\n",
        None,
        OnError::Reject,
    )
    .await
    .expect("insert_new");
    assert_eq!((report.rows, report.written), (2, 1));
    let prices: Vec<String> = products(&env).await.into_iter().map(|p| p.1).collect();
    assert_eq!(prices, ["1.00", "2.00"]);
}

#[tokio::test]
async fn a_key_twice_in_one_file_is_a_rejected_row() {
    let env = TestEnv::new().await.expect("services");
    products_table(&env).await;
    let file = b"sku,price\nA-1,1\nB-2,2\nA-1,3\n";
    let err = run(&env, &profile("upsert"), file, None, OnError::Reject)
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("row 4, column sku (cell A4): the key (A-1) appears again (first in row 2)"),
        "{err}"
    );
    let report = run(&env, &profile("upsert"), file, None, OnError::Skip)
        .await
        .expect("skips");
    assert_eq!((report.rows, report.rejected_total), (2, 1));
    assert_eq!(report.rejected[0].row, 4);
}

#[tokio::test]
async fn typed_cells_of_a_workbook_and_the_sheet_that_holds_the_header() {
    let env = TestEnv::new().await.expect("services");
    products_table(&env).await;
    let mut workbook = Workbook::new();
    // A first sheet of notes, without the header: skipped for the next one.
    workbook
        .add_worksheet()
        .set_name("Read me")
        .and_then(|s| s.write_string(0, 0, "Prices as of January"))
        .expect("notes");
    let sheet = workbook.add_worksheet().set_name("Prices").expect("sheet");
    let date = Format::new().set_num_format("yyyy-mm-dd");
    sheet
        .write_string(0, 0, "Price list (title row)")
        .expect("title");
    for (column, header) in ["SKU", "Price", "In Stock", "Launched", "Status"]
        .iter()
        .enumerate()
    {
        sheet
            .write_string(1, column as u16, *header)
            .expect("header");
    }
    sheet.write_number(2, 0, 1234.0).expect("sku as a number");
    sheet.write_string(2, 1, " 12.345 ").expect("price as text");
    sheet.write_boolean(2, 2, true).expect("bool");
    let launched = ExcelDateTime::from_ymd(2024, 2, 29).expect("date");
    sheet
        .write_datetime_with_format(2, 3, &launched, &date)
        .expect("date cell");
    sheet.write_string(2, 4, " Retired ").expect("status");
    sheet.write_string(3, 0, "X-9").expect("sku");
    sheet.write_number(3, 1, 7.0).expect("price");
    sheet.write_string(3, 2, "0").expect("bool as text");
    sheet.write_number(3, 3, 45_292.0).expect("serial date");
    let file = workbook.save_to_buffer().expect("xlsx");

    // The table's CHECK refuses a retired product with a price: permanent, nothing written.
    let err = run(&env, &profile("append"), &file, None, OnError::Reject)
        .await
        .expect_err("check constraint");
    assert!(matches!(err, ImportError::TableRefused(_)), "{err}");
    assert!(err.is_permanent());
    assert!(products(&env).await.is_empty());

    let loose = Profile::from_toml(
        "p.toml",
        &PRODUCTS.replace("\"upsert\"", "\"append\"").replace(
            "values = [\"active\", \"retired\"]",
            "values = [\"active\", \"Retired\", \"on hold\"]",
        ),
    )
    .expect("profile");
    sqlx::query("ALTER TABLE products DROP CONSTRAINT retired_is_free")
        .execute(&env.db)
        .await
        .expect("drop check");
    let report = run(&env, &loose, &file, None, OnError::Reject)
        .await
        .expect("imports");
    assert_eq!((report.rows, report.sheet.as_str()), (2, "Prices"));
    assert_eq!(
        products(&env).await,
        vec![
            (
                "1234".into(),
                "12.35".into(),
                true,
                Some("2024-02-29".into()),
                "Retired".into()
            ),
            (
                "X-9".into(),
                "7.00".into(),
                false,
                Some("2024-01-01".into()),
                "active".into()
            ),
        ]
    );

    // Asked for by name or position; a sheet that does not exist is named in the error.
    let by_name = run(
        &env,
        &loose,
        &file,
        Some(SheetChoice::Name("read ME".into())),
        OnError::Reject,
    )
    .await
    .expect_err("no header there");
    assert!(
        by_name.to_string().contains("missing column SKU, price"),
        "{by_name}"
    );
    let missing = run(
        &env,
        &loose,
        &file,
        Some(SheetChoice::Index(5)),
        OnError::Reject,
    )
    .await
    .expect_err("no sheet 5");
    assert_eq!(
        missing.to_string(),
        "the workbook has no sheet number 5 (counting from 0); its sheets: \"Read me\", \"Prices\""
    );
}

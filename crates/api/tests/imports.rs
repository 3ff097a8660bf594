//! The import routes against the real Postgres and RabbitMQ: `POST /api/imports/preview` (what an
//! import of an upload would read, with nothing stored or published), `GET /api/import-profiles`
//! (the profiles an upload may name), and uploads to `POST /api/jobs` naming a profile.
//!
//! Workbooks are built here by hand (a stored zip of five XML parts, see [`xlsx`]): the api
//! crate has no xlsx writer among its dev-dependencies, and burrow's fixtures only write the
//! people sheet with its header in row 1.

mod support;

use burrow_api::state::AppState;
use burrow_shared::import::{Profile, Profiles};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{content_type, TestApi};

/// A Mockaroo export (its lower-case, underscored headers) of three people; the second has a
/// bad email (spreadsheet row 3, column D).
const MOCKAROO_CSV: &str = "id,first_name,last_name,email,gender,ip_address\n\
    1,Ann,Lee,ann@example.com,Female,10.0.0.1\n\
    2,Bob,Ray,not-an-email,Male,10.0.0.2\n\
    3,Cid,Fox,cid@example.com,Male,10.0.0.3\n";

/// The products profile of the module doc of `burrow_shared::import::profile`.
const PRODUCTS_TOML: &str = r#"
name = "products"
description = "The product catalogue, upserted on its SKU"
schema = "public"
table = "products"
mode = "upsert"
key = ["sku"]

[[columns]]
name = "sku"
header = "SKU"
aliases = ["article", "item no"]
type = "text"
required = true
max_length = 32

[[columns]]
name = "price"
type = "numeric(10,2)"

[[columns]]
name = "status"
type = "one_of"
values = ["active", "retired"]
default = "active"
"#;

/// `people` and `products`.
fn with_products(state: AppState) -> AppState {
    let products = Profile::from_toml("products.toml", PRODUCTS_TOML).expect("a valid profile");
    AppState {
        profiles: Profiles::from_profiles(vec![products]).expect("distinct names"),
        ..state
    }
}

// Helpers of this binary only: multipart posts, and what the api stored.
/// Previews `bytes` with `fields`.
async fn post_preview(
    api: &TestApi,
    file_name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    api.post_form("/api/imports/preview", file_name, bytes, fields)
        .await
}

/// The column mapping of a preview, one entry per profile column.
fn mapped(column: &str, header: Option<&str>, cell: Option<&str>, required: bool) -> Value {
    json!({"column": column, "header": header, "cell": cell, "required": required})
}

/// Asserts an error answer: `status`, its code and exactly `message`.
fn assert_refused(answer: &(StatusCode, Value), status: StatusCode, code: &str, message: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert_eq!(body["message"], message, "{body}");
}

#[tokio::test]
async fn a_mockaroo_csv_preview_maps_converts_and_lists_errors_and_stores_nothing() {
    let api = TestApi::spawn().await;
    let (status, preview) =
        post_preview(&api, "MOCK_DATA.csv", MOCKAROO_CSV.as_bytes().to_vec(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview,
        json!({
            "profile": "people",
            "format": "csv",
            "sheet": "csv",
            "header_row": 1,
            "columns": [
                mapped("id", Some("id"), Some("A1"), true),
                mapped("first_name", Some("first_name"), Some("B1"), false),
                mapped("last_name", Some("last_name"), Some("C1"), false),
                mapped("email", Some("email"), Some("D1"), true),
                mapped("gender", Some("gender"), Some("E1"), false),
                mapped("ip_address", Some("ip_address"), Some("F1"), true),
            ],
            "missing": [],
            "ignored": [],
            "rows": [
                ["1", "Ann", "Lee", "ann@example.com", "Female", "10.0.0.1"],
                ["3", "Cid", "Fox", "cid@example.com", "Male", "10.0.0.3"],
            ],
            "rows_scanned": 3,
            "errors": [
                "row 3, column Email (cell D3): \"not-an-email\" is not an email address",
            ],
            "errors_total": 1,
        })
    );

    // The form of an upload is accepted whole (on_error and user_id are ignored).
    let (status, again) = post_preview(
        &api,
        "MOCK_DATA.csv",
        MOCKAROO_CSV.as_bytes().to_vec(),
        &[
            ("profile", "people"),
            ("sheet", "0"),
            ("header_row", "1"),
            ("on_error", "skip"),
            ("user_id", "alice"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, preview, "the same preview with every field given");

    api.assert_nothing_stored_or_published("after two previews")
        .await;
}

#[tokio::test]
async fn an_xlsx_preview_finds_the_header_under_title_rows_and_lists_missing_and_ignored() {
    let api = TestApi::spawn().await;
    let workbook = xlsx::workbook(
        "People",
        &[
            vec![xlsx::Cell::Text("Customer export")],
            vec![xlsx::Cell::Text("Generated by the CRM, January")],
            vec![
                xlsx::Cell::Text("Id"),
                xlsx::Cell::Text("First Name"),
                xlsx::Cell::Text("E-mail"),
                xlsx::Cell::Text("IP"),
                xlsx::Cell::Text("Notes"),
            ],
            vec![
                xlsx::Cell::Number(1.0),
                xlsx::Cell::Text("Ann"),
                xlsx::Cell::Text("ann@example.com"),
                xlsx::Cell::Text("10.0.0.1"),
                xlsx::Cell::Text("VIP"),
            ],
            vec![
                xlsx::Cell::Number(2.0),
                xlsx::Cell::Text("Bob"),
                xlsx::Cell::Text("bob@example.com"),
                xlsx::Cell::Text("10.0.0.2"),
                xlsx::Cell::Empty,
            ],
        ],
    );
    let expected = json!({
        "profile": "people",
        "format": "xlsx",
        "sheet": "People",
        "header_row": 3,
        "columns": [
            mapped("id", Some("Id"), Some("A3"), true),
            mapped("first_name", Some("First Name"), Some("B3"), false),
            mapped("last_name", None, None, false),
            mapped("email", Some("E-mail"), Some("C3"), true),
            mapped("gender", None, None, false),
            mapped("ip_address", Some("IP"), Some("D3"), true),
        ],
        "missing": ["LastName", "Gender"],
        "ignored": ["Notes"],
        "rows": [
            ["1", "Ann", null, "ann@example.com", null, "10.0.0.1"],
            ["2", "Bob", null, "bob@example.com", null, "10.0.0.2"],
        ],
        "rows_scanned": 2,
        "errors": [],
        "errors_total": 0,
    });

    // Found: the two title rows hold none of the required columns.
    let (status, found) = post_preview(&api, "crm.xlsx", workbook.clone(), &[]).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found, expected, "header found");

    // Given: the sheet by name in any case, the header's row.
    let (status, given) = post_preview(
        &api,
        "crm.xlsx",
        workbook.clone(),
        &[("sheet", "people"), ("header_row", "3")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{given}");
    assert_eq!(given, expected, "header and sheet given");

    // Given wrong: row 2 is a title, not the header.
    let answer = post_preview(&api, "crm.xlsx", workbook, &[("header_row", "2")]).await;
    assert_refused(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "row 2: the header row is missing column Id, Email, IpAddress; \
         found Generated by the CRM, January",
    );

    api.assert_nothing_stored_or_published("after previews")
        .await;
}

#[tokio::test]
async fn previews_refuse_unknown_profiles_sheets_bad_rows_binary_files_and_missing_columns() {
    let api = TestApi::spawn_with(with_products).await;
    let csv = || MOCKAROO_CSV.as_bytes().to_vec();

    let answer = post_preview(&api, "people.csv", csv(), &[("profile", "nope")]).await;
    assert_refused(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "no import profile \"nope\"; the profiles are people, products",
    );

    let answer = post_preview(&api, "people.csv", csv(), &[("sheet", "7")]).await;
    assert_refused(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "the workbook has no sheet number 7 (counting from 0); its sheets: \"csv\"",
    );

    let answer = post_preview(&api, "people.csv", csv(), &[("sheet", "Data")]).await;
    assert_refused(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "the workbook has no sheet \"Data\"; its sheets: \"csv\"",
    );

    let answer = post_preview(&api, "people.csv", csv(), &[("header_row", "0")]).await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "`header_row` is a row number from 1, not \"0\"",
    );

    let answer = post_preview(&api, "people.csv", csv(), &[("surprise", "1")]).await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);

    // Refused by content, whatever the name says.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01".to_vec();
    let answer = post_preview(&api, "people.csv", png, &[]).await;
    assert_refused(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the file is a PNG image, not a spreadsheet the import can read; save it as .xlsx or .csv",
    );
    let binary = b"Id,Email,IpAddress\n1\0\0\0\x01\x02,a@b.c,10.0.0.1\n".to_vec();
    let answer = post_preview(&api, "people.csv", binary, &[]).await;
    assert_refused(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the file is binary data, not a spreadsheet or CSV text (CSV must be UTF-8, \
         Windows-1252, or UTF-16 with a byte-order mark)",
    );

    let answer = post_preview(
        &api,
        "contacts.csv",
        b"name,phone\nAnn,555-0100\n".to_vec(),
        &[],
    )
    .await;
    assert_refused(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "row 1: the header row is missing column Id, Email, IpAddress; found name, phone",
    );

    // The same file through another profile: its own required columns.
    let answer = post_preview(
        &api,
        "contacts.csv",
        b"name,phone\nAnn,555-0100\n".to_vec(),
        &[("profile", "products")],
    )
    .await;
    assert_refused(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "row 1: the header row is missing column SKU; found name, phone",
    );

    let answer = post_preview(
        &api,
        "header-only.csv",
        b"Id,Email,IpAddress\n".to_vec(),
        &[],
    )
    .await;
    assert_refused(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "sheet \"csv\" has a header row but no data rows",
    );

    api.assert_nothing_stored_or_published("after refused previews")
        .await;
}

#[tokio::test]
async fn a_preview_through_a_custom_profile_applies_its_defaults_types_and_key() {
    let api = TestApi::spawn_with(with_products).await;
    let csv = "Article,Price,Status\nA-1,9.99,Retired\nA-2,5,\nA-1,1.00,active\nA-3,cheap,active\n";
    let (status, preview) = post_preview(
        &api,
        "catalogue.csv",
        csv.as_bytes().to_vec(),
        &[("profile", "products")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["profile"], "products");
    assert_eq!(
        preview["columns"],
        json!([
            mapped("sku", Some("Article"), Some("A1"), true),
            mapped("price", Some("Price"), Some("B1"), false),
            mapped("status", Some("Status"), Some("C1"), false),
        ])
    );
    assert_eq!(preview["missing"], json!([]));
    assert_eq!(preview["ignored"], json!([]));
    assert_eq!(
        preview["rows"],
        json!([["A-1", "9.99", "retired"], ["A-2", "5", "active"]]),
        "one_of written as listed; the default where the cell is empty"
    );
    assert_eq!(preview["rows_scanned"], 4);
    assert_eq!(preview["errors_total"], 2);
    let errors = preview["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{preview}");
    // The repeated key: its row, its column, its cell and both rows.
    assert_eq!(
        errors[0],
        "row 4, column sku (cell A4): the key (A-1) appears again (first in row 2)"
    );
    assert_eq!(
        errors[1],
        "row 5, column price (cell B5): expected a number, found \"cheap\""
    );
    api.assert_nothing_stored_or_published("after a preview")
        .await;
}

#[tokio::test]
async fn the_profiles_are_listed_with_their_columns_types_mode_key_and_table() {
    let api = TestApi::spawn_with(with_products).await;
    let response = api.get_response("/api/import-profiles").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "application/json");
    let profiles: Value = response.json().await.expect("json");
    let list = profiles.as_array().expect("a list");
    let names: Vec<&str> = list.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["people", "products"], "{profiles}");

    let people = &list[0];
    assert_eq!(people["table"], "public.imported_rows");
    assert_eq!(people["mode"], "replace");
    assert_eq!(people["key"], json!([]));
    let columns: Vec<(&str, &str, &str, bool)> = people["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default(),
                c["header"].as_str().unwrap_or_default(),
                c["type"].as_str().unwrap_or_default(),
                c["required"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("id", "Id", "bigint", true),
            ("first_name", "FirstName", "text", false),
            ("last_name", "LastName", "text", false),
            ("email", "Email", "email", true),
            ("gender", "Gender", "text", false),
            ("ip_address", "IpAddress", "inet", true),
        ]
    );
    assert_eq!(people["columns"][0]["unique"], true);
    assert_eq!(people["columns"][4]["max_length"], 64);

    assert_eq!(
        list[1],
        json!({
            "name": "products",
            "description": "The product catalogue, upserted on its SKU",
            "table": "public.products",
            "mode": "upsert",
            "key": ["sku"],
            "columns": [
                {
                    "name": "sku", "header": "SKU", "aliases": ["article", "item no"],
                    "type": "text", "values": [], "required": true, "default": null,
                    "max_length": 32, "unique": false,
                },
                {
                    "name": "price", "header": "price", "aliases": [],
                    "type": "numeric(10,2)", "values": [], "required": false, "default": null,
                    "max_length": null, "unique": false,
                },
                {
                    "name": "status", "header": "status", "aliases": [],
                    "type": "one_of", "values": ["active", "retired"], "required": false,
                    "default": "active", "max_length": null, "unique": false,
                },
            ],
        })
    );

    // Without configuration: people alone.
    let plain = TestApi::spawn().await;
    let (status, profiles) = plain.get("/api/import-profiles").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = profiles
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["people"]);
}

#[tokio::test]
async fn an_upload_naming_a_profile_carries_it_in_the_payload_and_an_unknown_one_is_422() {
    let api = TestApi::spawn_with(with_products).await;
    let csv = b"SKU,price\nA-1,9.99\n".to_vec();

    let (status, job) = api
        .post_form(
            "/api/jobs",
            "catalogue.csv",
            csv.clone(),
            &[("profile", "products")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    assert_eq!(job["kind"], "import_xlsx");
    let expected = json!({"profile": "products", "on_error": "reject"});
    assert_eq!(job["payload"], expected, "{job}");

    let (status, fetched) = api.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched["payload"], expected, "{fetched}");
    let stored: Value = sqlx::query_scalar("SELECT payload FROM jobs WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&api.env.db)
        .await
        .expect("the job row");
    assert_eq!(stored, expected);

    // The form's other fields go to the payload too.
    let (status, job) = api
        .post_form(
            "/api/jobs",
            "catalogue.csv",
            csv.clone(),
            &[
                ("profile", "products"),
                ("sheet", "0"),
                ("header_row", "1"),
                ("on_error", "skip"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(
        job["payload"],
        json!({"profile": "products", "sheet": 0, "header_row": 1, "on_error": "skip"}),
        "{job}"
    );

    // No profile named: people.
    let (status, job) = api
        .post_form(
            "/api/jobs",
            "MOCK_DATA.csv",
            MOCKAROO_CSV.as_bytes().to_vec(),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(
        job["payload"],
        json!({"profile": "people", "on_error": "reject"})
    );

    let answer = api
        .post_form("/api/jobs", "catalogue.csv", csv, &[("profile", "nope")])
        .await;
    assert_refused(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "no import profile \"nope\"; the profiles are people, products",
    );
    assert_eq!(
        api.env.count("jobs").await,
        3,
        "no job for the refused upload"
    );
    assert_eq!(
        api.env.count("job_files").await,
        3,
        "no file for the refused upload"
    );
    assert_eq!(
        api.env.count("outbox").await,
        3,
        "no outbox row for the refused upload"
    );
}

/// A minimal .xlsx written by hand: one worksheet of inline strings and numbers, in a zip whose
/// entries are stored (not deflated).
mod xlsx {
    /// One cell.
    pub enum Cell {
        Text(&'static str),
        Number(f64),
        Empty,
    }

    /// A workbook with one sheet called `sheet` holding `rows` from A1.
    pub fn workbook(sheet: &str, rows: &[Vec<Cell>]) -> Vec<u8> {
        let mut data = String::new();
        for (r, row) in rows.iter().enumerate() {
            let number = r + 1;
            data.push_str(&format!("<row r=\"{number}\">"));
            for (c, cell) in row.iter().enumerate() {
                let reference = format!("{}{number}", char::from(b'A' + c as u8));
                match cell {
                    Cell::Text(text) => data.push_str(&format!(
                        "<c r=\"{reference}\" t=\"inlineStr\"><is><t>{}</t></is></c>",
                        escape(text)
                    )),
                    Cell::Number(n) => {
                        data.push_str(&format!("<c r=\"{reference}\"><v>{n}</v></c>"));
                    }
                    Cell::Empty => {}
                }
            }
            data.push_str("</row>");
        }
        const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;
        const MAIN: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
        const RELS: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
        const DOC_RELS: &str =
            "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
        let parts = [
            (
                "[Content_Types].xml",
                format!(
                    "{HEAD}<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
                     <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
                     <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
                     <Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
                     <Override PartName=\"/xl/worksheets/sheet1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>\
                     </Types>"
                ),
            ),
            (
                "_rels/.rels",
                format!(
                    "{HEAD}<Relationships xmlns=\"{RELS}\"><Relationship Id=\"rId1\" \
                     Type=\"{DOC_RELS}/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"
                ),
            ),
            (
                "xl/workbook.xml",
                format!(
                    "{HEAD}<workbook xmlns=\"{MAIN}\" xmlns:r=\"{DOC_RELS}\"><sheets>\
                     <sheet name=\"{}\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>",
                    escape(sheet)
                ),
            ),
            (
                "xl/_rels/workbook.xml.rels",
                format!(
                    "{HEAD}<Relationships xmlns=\"{RELS}\"><Relationship Id=\"rId1\" \
                     Type=\"{DOC_RELS}/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>"
                ),
            ),
            (
                "xl/worksheets/sheet1.xml",
                format!("{HEAD}<worksheet xmlns=\"{MAIN}\"><sheetData>{data}</sheetData></worksheet>"),
            ),
        ];
        stored_zip(&parts)
    }

    fn escape(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }

    /// A zip archive (PKWARE APPNOTE 6.3) of `entries`, each stored uncompressed.
    fn stored_zip(entries: &[(&str, String)]) -> Vec<u8> {
        /// 1980-01-01, the first date a zip can hold.
        const DOS_DATE: u16 = (1 << 5) | 1;
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, content) in entries {
            let (name, content) = (name.as_bytes(), content.as_bytes());
            let offset = out.len() as u32;
            let crc = crc32(content);
            let size = content.len() as u32;
            // Local file header.
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            for field in [20u16, 0, 0, 0, DOS_DATE] {
                out.extend_from_slice(&field.to_le_bytes());
            }
            for field in [crc, size, size] {
                out.extend_from_slice(&field.to_le_bytes());
            }
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(content);
            // Its central directory record.
            central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            for field in [20u16, 20, 0, 0, 0, DOS_DATE] {
                central.extend_from_slice(&field.to_le_bytes());
            }
            for field in [crc, size, size] {
                central.extend_from_slice(&field.to_le_bytes());
            }
            for field in [name.len() as u16, 0, 0, 0, 0] {
                central.extend_from_slice(&field.to_le_bytes());
            }
            central.extend_from_slice(&0u32.to_le_bytes());
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name);
        }
        let central_offset = out.len() as u32;
        out.extend_from_slice(&central);
        // End of central directory.
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        let count = entries.len() as u16;
        for field in [0u16, 0, count, count] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&central_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    /// CRC-32 (IEEE 802.3, reflected), bit by bit: the parts are small.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}

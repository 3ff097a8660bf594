//! Times the parser alone (no database) on a workbook, for profiling the import:
//! `cargo run --release -p burrow-shared --example parse_big -- fixtures/big/people-1000000.xlsx`.
fn main() {
    let path = std::env::args().nth(1).expect("a file");
    let bytes = std::fs::read(&path).expect("read");
    let started = std::time::Instant::now();
    let report = burrow_shared::import::parse_people(bytes, &Default::default()).expect("parses");
    println!(
        "{} rows in {:.2} s",
        report.rows,
        started.elapsed().as_secs_f64()
    );
}

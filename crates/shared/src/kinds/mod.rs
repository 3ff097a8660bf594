//! The kinds burrow ships (the product, beside the engine). The engine registers none: the
//! burrow binaries register these ([`shipped`]); an app registers whichever it wants next to
//! its own ([`crate::handler::Registry`]).

mod export_xlsx;
mod import_xlsx;
mod noop;
mod sleep;

pub use export_xlsx::{ExportPayload, ExportXlsx};
pub use import_xlsx::{ImportPayload, ImportXlsx};
pub use noop::{Noop, NoopPayload};
pub use sleep::{Sleep, SleepPayload};

use crate::handler::{JobHandler, Registry};
use crate::import::ImportOptions;

/// The kind of an uploaded spreadsheet import.
pub const KIND_IMPORT_XLSX: &str = <ImportXlsx as JobHandler>::KIND;

/// Every shipped kind; `import` configures `import_xlsx`.
pub fn shipped(import: ImportOptions) -> Registry {
    Registry::default()
        .register(ImportXlsx { options: import })
        .register(ExportXlsx)
        .register(Noop)
        .register(Sleep)
}

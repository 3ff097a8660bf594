//! The job kinds burrow ships. Adding one: a file here implementing
//! [`JobHandler`](crate::handler::JobHandler), and one line in [`registry`].

mod export_xlsx;
mod import_xlsx;
mod noop;
mod sleep;

pub use export_xlsx::{ExportPayload, ExportXlsx};
pub use import_xlsx::{ImportPayload, ImportXlsx};
pub use noop::Noop;
pub use sleep::{Sleep, SleepPayload};

use crate::handler::Registry;
use crate::import::ImportOptions;

/// Every kind this build runs; `import` configures `import_xlsx`.
pub fn registry(import: ImportOptions) -> Registry {
    Registry::default()
        .register(ImportXlsx { options: import })
        .register(ExportXlsx)
        .register(Noop)
        .register(Sleep)
}

//! The kinds burrow ships (the product, beside the engine). The engine registers none: the
//! burrow binaries register these ([`shipped`]); an app registers whichever it wants next to
//! its own ([`crate::handler::Registry`]).
//!
//! [`webhook`] is public as a module too: receivers verify its signature with
//! [`webhook::verify`].

mod export_xlsx;
mod import_xlsx;
mod noop;
mod sleep;
pub mod webhook;

pub use export_xlsx::{ExportPayload, ExportXlsx};
pub use import_xlsx::{ImportPayload, ImportXlsx};
pub use noop::{Noop, NoopPayload};
pub use sleep::{Sleep, SleepPayload};
pub use webhook::{Webhook, WebhookConfig, WebhookPayload};

use crate::handler::{JobHandler, Registry};
use crate::import::ImportOptions;

/// The kind of an uploaded spreadsheet import.
pub const KIND_IMPORT_XLSX: &str = <ImportXlsx as JobHandler>::KIND;

/// Every shipped kind; `import` configures `import_xlsx`, `webhook` the `webhook` kind (its
/// default allows no host and has no secret: every webhook job is refused).
pub fn shipped(import: ImportOptions, webhook: WebhookConfig) -> Registry {
    Registry::default()
        .register(ImportXlsx { options: import })
        .register(ExportXlsx)
        .register(Noop)
        .register(Sleep)
        .register(Webhook::new(webhook))
}

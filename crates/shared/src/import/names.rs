//! How a header is compared: people write the same header many ways.

/// A header as it is compared: lower case, letters and digits only (`"First Name:"` →
/// `"firstname"`). Unicode letters count, so `Prénom` stays `prénom`.
pub fn normalize_header(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

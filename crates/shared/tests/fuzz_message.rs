//! Fuzz target: the job-message decoder (`JobMessage::decode`) on hostile delivery bodies.
//!
//! Anyone who can publish to the work queue chooses these bytes, so the decoder must answer
//! `Ok` or a `DecodeError` for every input, and never panic or overflow the stack. Properties:
//! arbitrary bytes, arbitrary JSON values, objects with the real field names and random
//! values (with an exact oracle: decoding succeeds iff every field is valid), deep nesting,
//! and the round trip of every valid message. Runs and budgets: see `fuzz_support`.

mod fuzz_support;

use burrow_shared::message::{DecodeError, JobMessage, MESSAGE_VERSION};
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};
use fuzz_support::{Probe, Property, Target};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Number, Value};
use uuid::Uuid;

const TARGET: Target = Target {
    name: "fuzz_message",
    regressions: "tests/fuzz-regressions/fuzz_message.txt",
    properties: 5,
    keep_last_case: false,
};

/// The wire fields of a version-1 message, in the order `encode` writes them.
const FIELDS: [&str; 8] = [
    "v",
    "job_id",
    "kind",
    "attempt",
    "enqueued_at",
    "correlation_id",
    "run_at",
    "priority",
];

fn bytes_as_is(bytes: &Vec<u8>) -> Vec<u8> {
    bytes.to_owned()
}

/// Decodes `body` and checks what any successful decode must satisfy: the version is the one
/// this build reads, and the message survives `encode` → `decode` unchanged.
fn decode_checked(body: &[u8], probe: &Probe) -> Result<Option<JobMessage>, TestCaseError> {
    match JobMessage::decode(body) {
        Ok(message) => {
            prop_assert_eq!(message.v, MESSAGE_VERSION);
            let again = JobMessage::decode(&message.encode());
            prop_assert!(
                matches!(&again, Ok(m) if *m == message),
                "re-encoded message decodes to {again:?}"
            );
            probe.outcome("ok");
            Ok(Some(message))
        }
        Err(e) => {
            // The error text goes to the DLQ headers and logs: rendering it must not fail.
            let _ = e.to_string();
            probe.outcome(match e {
                DecodeError::Malformed(_) => "Malformed",
                DecodeError::UnsupportedVersion { .. } => "UnsupportedVersion",
            });
            Ok(None)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary bytes.

/// Raw bytes, JSON-looking text, and valid messages with a few bytes changed.
fn bodies() -> impl Strategy<Value = Vec<u8>> {
    let edited = (
        valid_message(),
        vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    )
        .prop_map(|(message, edits)| {
            let mut body = message.encode();
            for (at, byte) in edits {
                let i = at.index(body.len());
                body[i] = byte;
            }
            body
        });
    prop_oneof![
        vec(any::<u8>(), 0..512),
        r#"[\[\]{}":,0-9a-zA-Z_.+\-\\ ]{0,256}"#.prop_map(String::into_bytes),
        edited,
    ]
}

#[test]
fn arbitrary_bytes_never_panic_the_decoder() {
    let property = Property {
        target: &TARGET,
        name: "arbitrary_bytes_never_panic_the_decoder",
        default_cases: 2_000,
        extension: "json",
        materialize: &bytes_as_is,
    };
    fuzz_support::run(&property, bodies(), |body, probe| {
        decode_checked(&body, probe).map(drop)
    });
}

// ---------------------------------------------------------------------------------------------
// Arbitrary JSON values.

/// Strings a message field might plausibly hold, valid or nearly so.
const PLAUSIBLE_STRINGS: [&str; 12] = [
    "import_xlsx",
    "",
    "0195e0a4-7b1c-7d1e-9a55-2f3c4d5e6f70",
    "0195e0a47b1c7d1e9a552f3c4d5e6f70",
    "urn:uuid:0195e0a4-7b1c-7d1e-9a55-2f3c4d5e6f70",
    "{0195e0a4-7b1c-7d1e-9a55-2f3c4d5e6f70}",
    "0195e0a4-7b1c-7d1e-9a55-2f3c4d5e6f7",
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00.123456789+05:30",
    "2024-02-30T00:00:00Z",
    "+10000-01-01T00:00:00Z",
    "1970-01-01T23:59:60Z",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        select(vec![
            0u64,
            1,
            2,
            9,
            10,
            255,
            256,
            4_294_967_295,
            4_294_967_296
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        select(PLAUSIBLE_STRINGS.to_vec()).prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(json_key(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly the real field names, so that the decoder gets past "missing field".
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(FIELDS.to_vec()).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Any JSON value; objects with real field names and random values most of the time.
fn json_documents() -> impl Strategy<Value = (Value, bool)> {
    let message_like = btree_map(select(FIELDS.to_vec()), json_value(), 0..=8).prop_map(|fields| {
        Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    });
    (prop_oneof![json_value(), message_like], any::<bool>())
}

#[test]
fn arbitrary_json_values_never_panic_the_decoder() {
    let property = Property {
        target: &TARGET,
        name: "arbitrary_json_values_never_panic_the_decoder",
        default_cases: 500,
        extension: "json",
        materialize: &|(value, pretty): &(Value, bool)| json_text(value, *pretty),
    };
    fuzz_support::run(&property, json_documents(), |(value, pretty), probe| {
        decode_checked(&json_text(&value, pretty), probe).map(drop)
    });
}

fn json_text(value: &Value, pretty: bool) -> Vec<u8> {
    let text = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    };
    text.unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Objects with the real field names and random values, against an exact oracle.

/// One field as written on the wire, and the value a correct decoder must read from it
/// (`None`: no decoder may accept it).
#[derive(Debug, Clone)]
struct Field<T> {
    json: String,
    value: Option<T>,
}

fn field<T>(json: impl Into<String>, value: Option<T>) -> Field<T> {
    Field {
        json: json.into(),
        value,
    }
}

/// JSON text that is never a valid value of a number, uuid or date field.
const WRONG_TYPES: [&str; 8] = [
    "null",
    "true",
    "[]",
    "{}",
    "[1]",
    "{\"v\":1}",
    "\"\"",
    "1.5",
];

/// An unsigned 32-bit field (`v`, `attempt`).
fn u32_field() -> impl Strategy<Value = Field<u32>> {
    prop_oneof![
        24 => Just(field("1", Some(1))),
        4 => any::<u32>().prop_map(|n| field(n.to_string(), Some(n))),
        1 => select(vec!["-1", "4294967296", "18446744073709551616", "1.0", "1e0", "\"1\"", "01"])
            .prop_map(|s| field(s, None)),
        1 => select(WRONG_TYPES.to_vec()).prop_map(|s| field(s, None)),
    ]
}

/// `priority`, a u8.
fn u8_field() -> impl Strategy<Value = Field<u8>> {
    prop_oneof![
        8 => any::<u8>().prop_map(|n| field(n.to_string(), Some(n))),
        1 => select(vec!["256", "-1", "9.0", "\"9\"", "1000000"]).prop_map(|s| field(s, None)),
        1 => select(WRONG_TYPES.to_vec()).prop_map(|s| field(s, None)),
    ]
}

/// `job_id`, `correlation_id`: a uuid in any of its text forms, or not.
fn uuid_field() -> impl Strategy<Value = Field<Uuid>> {
    let formatted = (any::<u128>(), 0..5u8).prop_map(|(n, form)| {
        let id = Uuid::from_u128(n);
        let text = match form {
            0 => id.hyphenated().to_string(),
            1 => id.simple().to_string(),
            2 => id.urn().to_string(),
            3 => id.braced().to_string(),
            _ => id.hyphenated().to_string().to_uppercase(),
        };
        field(quote(&text), Some(id))
    });
    // Any other string: the uuid crate's own parser (what serde calls) says whether it is one.
    let text = prop_oneof![any::<String>(), "[0-9a-fA-F{}:urnid-]{0,45}"]
        .prop_map(|s| field(quote(&s), s.parse::<Uuid>().ok()));
    prop_oneof![
        24 => formatted,
        1 => text,
        1 => select(WRONG_TYPES.to_vec()).prop_map(|s| field(s, None)),
        1 => any::<u128>().prop_map(|n| field(n.to_string(), None)),
    ]
}

/// `enqueued_at`, `run_at`: an RFC 3339 date-time in several spellings, or not.
fn date_field() -> impl Strategy<Value = Field<DateTime<Utc>>> {
    // Local times stay within years 0000–9999 (RFC 3339) whatever the offset.
    let seconds = -62_167_219_200i64 + 86_400..253_402_300_799 - 86_400;
    let formatted = (
        seconds,
        0..1_000_000_000u32,
        -1439..=1439i32,
        0..4u8,
        any::<bool>(),
    )
        .prop_filter_map("representable", |(secs, nanos, minutes, precision, z)| {
            let offset = FixedOffset::east_opt(minutes * 60)?;
            let local = offset.timestamp_opt(secs, nanos).single()?;
            let format = match precision {
                0 => SecondsFormat::Secs,
                1 => SecondsFormat::Millis,
                2 => SecondsFormat::Nanos,
                _ => SecondsFormat::AutoSi,
            };
            let text = local.to_rfc3339_opts(format, z);
            // The expected instant is what the text says (a coarser format drops digits).
            let expected = DateTime::parse_from_rfc3339(&text)
                .ok()?
                .with_timezone(&Utc);
            Some(field(quote(&text), Some(expected)))
        });
    // Anything else: chrono's `FromStr` (what its serde impl calls) is the oracle.
    let text = prop_oneof![
        any::<String>(),
        "[+-]?[0-9]{4,6}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|z|[+-][0-9]{2}:?[0-9]{2})?",
        select(PLAUSIBLE_STRINGS.to_vec()).prop_map(str::to_owned),
    ]
    .prop_map(|s| {
        let parsed = s.parse::<DateTime<FixedOffset>>().ok().map(|d| d.with_timezone(&Utc));
        field(quote(&s), parsed)
    });
    prop_oneof![
        20 => formatted,
        2 => text,
        1 => select(WRONG_TYPES.to_vec()).prop_map(|s| field(s, None)),
        1 => any::<i64>().prop_map(|n| field(n.to_string(), None)),
    ]
}

/// `kind`: any string is valid.
fn kind_field() -> impl Strategy<Value = Field<String>> {
    prop_oneof![
        8 => Just(field(quote("import_xlsx"), Some("import_xlsx".to_owned()))),
        4 => any::<String>().prop_map(|s| field(quote(&s), Some(s))),
        1 => "[a-z]{1000,4000}".prop_map(|s| field(quote(&s), Some(s))),
        1 => select(vec!["null", "1", "[]", "{}", "true"]).prop_map(|s| field(s, None)),
    ]
}

/// `run_at`: absent, `null` or a date.
fn run_at_field() -> impl Strategy<Value = Field<Option<DateTime<Utc>>>> {
    prop_oneof![
        1 => Just(field("null", Some(None))),
        // `null` is valid here, whichever generator wrote it.
        3 => date_field().prop_map(|f| {
            let value = if f.json == "null" { Some(None) } else { f.value.map(Some) };
            field(f.json, value)
        }),
    ]
}

/// A message object as JSON text, and the message a correct decoder must return (or `Err`).
#[derive(Debug, Clone)]
struct Structured {
    json: String,
    expected: Result<JobMessage, Expected>,
}

#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Malformed,
    UnsupportedVersion(u32),
}

fn present<T: std::fmt::Debug + Clone + 'static>(
    field: impl Strategy<Value = Field<T>>,
) -> impl Strategy<Value = Option<Field<T>>> {
    prop_oneof![40 => field.prop_map(Some), 1 => Just(None)]
}

prop_compose! {
    fn structured()(
        v in present(u32_field()),
        job_id in present(uuid_field()),
        kind in present(kind_field()),
        attempt in present(u32_field()),
        enqueued_at in present(date_field()),
        correlation_id in present(uuid_field()),
        run_at in prop_oneof![1 => Just(None), 1 => run_at_field().prop_map(Some)],
        priority in prop_oneof![1 => Just(None), 2 => u8_field().prop_map(Some)],
        extra in vec(("[a-zA-Z_]{1,12}".prop_filter("not a field", |k| !FIELDS.contains(&k.as_str())), json_value()), 0..3),
        duplicate in prop_oneof![20 => Just(None), 1 => select(FIELDS.to_vec()).prop_map(Some)],
        order in Just((0..16usize).collect::<Vec<_>>()).prop_shuffle(),
        escaped_keys in any::<u16>(),
        spaces in select(vec!["", " ", "\n", "\t ", "\r\n  "]),
    ) -> Structured {
        let mut members: Vec<(String, String)> = Vec::new();
        let mut push = |key: &str, json: Option<&String>| {
            if let Some(json) = json {
                members.push((key.to_owned(), json.clone()));
            }
        };
        push("v", v.as_ref().map(|f| &f.json));
        push("job_id", job_id.as_ref().map(|f| &f.json));
        push("kind", kind.as_ref().map(|f| &f.json));
        push("attempt", attempt.as_ref().map(|f| &f.json));
        push("enqueued_at", enqueued_at.as_ref().map(|f| &f.json));
        push("correlation_id", correlation_id.as_ref().map(|f| &f.json));
        push("run_at", run_at.as_ref().map(|f| &f.json));
        push("priority", priority.as_ref().map(|f| &f.json));
        for (key, value) in &extra {
            members.push((key.clone(), value.to_string()));
        }
        // A second copy of a field that is there (serde refuses duplicate fields).
        let duplicate = duplicate.filter(|name| members.iter().any(|(k, _)| k == name));
        if let Some(name) = duplicate {
            members.push((name.to_owned(), "0".to_owned()));
        }
        // Shuffle, then spell some keys with \u escapes (the same key to a JSON reader).
        let mut shuffled: Vec<(String, String)> = order
            .iter()
            .filter_map(|&i| members.get(i).cloned())
            .collect();
        for (i, (key, _)) in shuffled.iter_mut().enumerate() {
            *key = if escaped_keys & (1 << (i % 16)) != 0 {
                format!("\"{}\"", key.chars().map(|c| format!("\\u{:04x}", c as u32)).collect::<String>())
            } else {
                quote(key)
            };
        }
        let body: Vec<String> = shuffled
            .iter()
            .map(|(key, value)| format!("{spaces}{key}{spaces}:{spaces}{value}"))
            .collect();
        let json = format!("{{{}{spaces}}}", body.join(","));

        let expected = (|| {
            if duplicate.is_some() {
                return Err(Expected::Malformed);
            }
            let message = JobMessage {
                v: v.and_then(|f| f.value).ok_or(Expected::Malformed)?,
                job_id: job_id.and_then(|f| f.value).ok_or(Expected::Malformed)?,
                kind: kind.and_then(|f| f.value).ok_or(Expected::Malformed)?,
                attempt: attempt.and_then(|f| f.value).ok_or(Expected::Malformed)?,
                enqueued_at: enqueued_at.and_then(|f| f.value).ok_or(Expected::Malformed)?,
                correlation_id: correlation_id.and_then(|f| f.value).ok_or(Expected::Malformed)?,
                run_at: match run_at {
                    None => None,
                    Some(f) => f.value.ok_or(Expected::Malformed)?,
                },
                priority: match priority {
                    None => 0,
                    Some(f) => f.value.ok_or(Expected::Malformed)?,
                },
                trace: None,
                queue: None,
            };
            if message.v != MESSAGE_VERSION {
                return Err(Expected::UnsupportedVersion(message.v));
            }
            Ok(message)
        })();
        Structured { json, expected }
    }
}

#[test]
fn message_objects_decode_exactly_when_every_field_is_valid() {
    let property = Property {
        target: &TARGET,
        name: "message_objects_decode_exactly_when_every_field_is_valid",
        default_cases: 600,
        extension: "json",
        materialize: &|s: &Structured| s.json.clone().into_bytes(),
    };
    fuzz_support::run(&property, structured(), |case, probe| {
        let decoded = decode_checked(case.json.as_bytes(), probe)?;
        match (&case.expected, decoded) {
            (Ok(expected), Some(decoded)) => prop_assert_eq!(expected, &decoded),
            (Ok(expected), None) => prop_assert!(
                false,
                "a valid message was refused: {:?} (expected {expected:?})",
                JobMessage::decode(case.json.as_bytes())
            ),
            (Err(expected), Some(decoded)) => {
                prop_assert!(false, "expected {expected:?}, decoded {decoded:?}")
            }
            (Err(expected), None) => {
                let found = match JobMessage::decode(case.json.as_bytes()) {
                    Err(DecodeError::UnsupportedVersion { found }) => {
                        Expected::UnsupportedVersion(found)
                    }
                    _ => Expected::Malformed,
                };
                prop_assert_eq!(expected, &found);
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Deep nesting and round trips.

/// `[[[[…`, `{"extra":{"extra":…` and the like, up to 100,000 levels, closed or not.
fn nested() -> impl Strategy<Value = Vec<u8>> {
    let openers = select(vec![
        "[",
        "{\"extra\":",
        "{\"extra\":[",
        "{\"v\":1,\"extra\":",
    ]);
    (
        openers,
        0..100_000usize,
        any::<bool>(),
        select(vec!["1", "null", "{}", ""]),
    )
        .prop_map(|(opener, depth, closed, core)| {
            let mut text = opener.repeat(depth);
            text.push_str(core);
            if closed {
                let closer: String = opener
                    .chars()
                    .rev()
                    .filter_map(|c| match c {
                        '[' => Some(']'),
                        '{' => Some('}'),
                        _ => None,
                    })
                    .collect();
                text.push_str(&closer.repeat(depth));
            }
            text.into_bytes()
        })
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    let property = Property {
        target: &TARGET,
        name: "deeply_nested_json_is_refused_without_overflowing_the_stack",
        default_cases: 50,
        extension: "json",
        materialize: &bytes_as_is,
    };
    fuzz_support::run(&property, nested(), |body, probe| {
        decode_checked(&body, probe).map(drop)
    });
}

/// Any message this build could write.
fn valid_message() -> impl Strategy<Value = JobMessage> {
    let instant = (
        DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
        0..1_000_000_000u32,
    )
        .prop_filter_map("in range", |(secs, nanos)| {
            DateTime::from_timestamp(secs, nanos)
        });
    (
        any::<u128>(),
        prop_oneof![Just("import_xlsx".to_owned()), any::<String>()],
        any::<u32>(),
        instant.clone(),
        any::<u128>(),
        proptest::option::of(instant),
        any::<u8>(),
        proptest::option::of(prop_oneof![Just("imports".to_owned()), any::<String>()]),
    )
        .prop_map(
            |(job_id, kind, attempt, enqueued_at, correlation_id, run_at, priority, queue)| {
                JobMessage {
                    v: MESSAGE_VERSION,
                    job_id: Uuid::from_u128(job_id),
                    kind,
                    attempt,
                    enqueued_at,
                    correlation_id: Uuid::from_u128(correlation_id),
                    run_at,
                    priority,
                    trace: None,
                    queue,
                }
            },
        )
}

#[test]
fn valid_messages_round_trip() {
    let property = Property {
        target: &TARGET,
        name: "valid_messages_round_trip",
        default_cases: 2_000,
        extension: "json",
        materialize: &JobMessage::encode,
    };
    fuzz_support::run(&property, valid_message(), |message, probe| {
        let body = message.encode();
        let decoded = JobMessage::decode(&body);
        prop_assert!(
            matches!(&decoded, Ok(m) if *m == message),
            "{} decodes to {decoded:?}",
            String::from_utf8_lossy(&body)
        );
        probe.outcome("ok");
        Ok(())
    });
}

/// Every body an earlier failure saved in `tests/fuzz-regressions/` decodes correctly now.
#[test]
fn bodies_saved_by_earlier_failures_are_handled() {
    let probe = Probe::default();
    let failures: Vec<String> = fuzz_support::saved_inputs(&TARGET, &["json"])
        .into_iter()
        .filter_map(|(name, body)| {
            let decode = || decode_checked(&body, &probe).map(drop);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode));
            match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{name}: {e}")),
                Err(_) => Some(format!("{name}: panicked")),
            }
        })
        .collect();
    assert!(
        failures.is_empty(),
        "saved bodies in tests/fuzz-regressions/ still fail:\n{}",
        failures.join("\n")
    );
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

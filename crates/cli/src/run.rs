//! `tollgate run SCENARIO.json` (FORMAT.md §2–3): plays a scenario through the engine on the
//! in-memory adapters with a simulated clock.
//!
//! The scenario is read and checked whole before anything runs (no object in it holds a
//! key twice, its catalog loads, its steps name known operations in non-decreasing time,
//! each `expect` holds one of `result` and `error`), so a malformed scenario fails with one message and exit 1. Then its
//! customers are created and its steps run in order. Before each step the clock moves to
//! the step's `at` and every customer's due transitions apply; each prints an `{"event"}`
//! line. With `--check`, the first step whose output does not match its `expect` stops the
//! run with exit 1 and a report on stderr.

use crate::expect::{Difference, first_difference};
use crate::ops::{self, Context, RunEngine};
use crate::table;
use chrono::{DateTime, Utc};
use pollster::block_on;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::Path;
use tollgate_adapters::{Engine, Error, MemoryStorage, ScriptedBilling};
use tollgate_core::entitlement::{EntitlementFields, FallbackEntitlements};
use tollgate_core::journey::ProvisionCustomerRequest;
use tollgate_core::money::RoundingMode;
use tollgate_core::proration::ProrationPolicy;
use tollgate_core::settings::Settings;
use tollgate_core::{Catalog, ErrorCode, view};

/// How `tollgate run` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (FORMAT.md §3).
    Json,
    /// A human timeline.
    Table,
}

/// What `tollgate run` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The scenario file.
    pub path: String,
    /// Compare each step's output with its `expect`.
    pub check: bool,
    /// How to print.
    pub format: Format,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario<'a> {
    /// Kept as written, so that an inline catalog is read by the same parser as a catalog
    /// file (a parsed `Value` would already have dropped a duplicate key).
    #[serde(borrow)]
    catalog: &'a RawValue,
    #[serde(default)]
    settings: SettingsInput,
    #[serde(default)]
    customers: Vec<ProvisionCustomerRequest>,
    #[serde(default)]
    steps: Vec<Step>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SettingsInput {
    billing_integration: Option<bool>,
    proration: Option<ProrationPolicy>,
    rounding: Option<RoundingMode>,
    fallback_entitlements: Option<Vec<EntitlementFields>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    at: DateTime<Utc>,
    op: String,
    input: Option<Value>,
    expect: Option<Value>,
}

fn bad_input(message: String) -> Error {
    Error::new(ErrorCode::BadUserInput, message)
}

/// A scenario ready to play.
struct Loaded {
    engine: RunEngine,
    fallback: FallbackEntitlements,
    customers: Vec<ProvisionCustomerRequest>,
    steps: Vec<Step>,
}

fn load(path: &str) -> Result<Loaded, Error> {
    let bytes = std::fs::read(path).map_err(|e| bad_input(format!("cannot read `{path}`: {e}")))?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let scenario: Scenario = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| bad_input(format!("scenario `{path}` at {}: {}", e.path(), e.inner())))?;
    deserializer
        .end()
        .map_err(|e| bad_input(format!("scenario `{path}`: {e}")))?;
    crate::keys::refuse_repeated(&bytes)
        .map_err(|e| bad_input(format!("scenario `{path}` at {e}")))?;
    let base = Path::new(path).parent().unwrap_or(Path::new(""));
    let catalog = load_catalog(scenario.catalog, &bytes, base)?;
    let settings = settings(&scenario.settings);
    let fallback = FallbackEntitlements::new(
        &catalog,
        scenario
            .settings
            .fallback_entitlements
            .as_deref()
            .unwrap_or_default(),
    )
    .map_err(|e| {
        Error::new(
            e.code(),
            format!("settings.fallbackEntitlements: {}", e.message()),
        )
    })?;
    for (i, customer) in scenario.customers.iter().enumerate() {
        if customer.subscription_params.is_some() {
            return Err(bad_input(format!(
                "customers[{i}].subscriptionParams: scenario customers are created without a subscription; use a `provisionCustomer` step"
            )));
        }
    }
    check_steps(&scenario.steps)?;
    Ok(Loaded {
        engine: Engine::new(
            catalog,
            settings,
            MemoryStorage::new(),
            ScriptedBilling::new(),
        ),
        fallback,
        customers: scenario.customers,
        steps: scenario.steps,
    })
}

/// The scenario's catalog: a file named relative to the scenario, or the inline object,
/// both read by [`Catalog::from_json`] (same codes, duplicate keys refused alike).
fn load_catalog(catalog: &RawValue, scenario: &[u8], base: &Path) -> Result<Catalog, Error> {
    let text = catalog.get();
    let (loaded, name) = match text.as_bytes().first() {
        Some(b'"') => {
            let relative: String =
                serde_json::from_str(text).map_err(|e| bad_input(format!("catalog: {e}")))?;
            let file = base.join(&relative);
            let bytes = std::fs::read(&file).map_err(|e| {
                Error::new(
                    ErrorCode::CatalogInvalid,
                    format!("cannot read catalog `{relative}`: {e}"),
                )
            })?;
            (Catalog::from_json(&bytes), format!("catalog `{relative}`"))
        }
        Some(b'{') => (
            Catalog::from_json(&in_place(scenario, text)),
            "the inline catalog".to_owned(),
        ),
        _ => {
            return Err(bad_input(
                "catalog: expected a path relative to the scenario or a catalog object".to_owned(),
            ));
        }
    };
    loaded.map_err(|e| {
        let problems: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
        Error::new(
            ErrorCode::CatalogInvalid,
            format!("{name} does not load: {}", problems.join("; ")),
        )
    })
}

/// `inline` (a part of `scenario`) preceded by the scenario's text before it blanked out,
/// newlines kept: JSON whose problems have the line and column they have in the scenario.
fn in_place(scenario: &[u8], inline: &str) -> Vec<u8> {
    let before = inline
        .as_ptr()
        .addr()
        .checked_sub(scenario.as_ptr().addr())
        .and_then(|offset| scenario.get(..offset))
        .unwrap_or_default();
    let mut text: Vec<u8> = before
        .iter()
        .map(|b| if *b == b'\n' { b'\n' } else { b' ' })
        .collect();
    text.extend_from_slice(inline.as_bytes());
    text
}

fn settings(input: &SettingsInput) -> Settings {
    Settings::new(
        input.billing_integration.unwrap_or(true),
        input.proration.unwrap_or_default(),
        input.rounding.unwrap_or_default(),
    )
}

fn check_steps(steps: &[Step]) -> Result<(), Error> {
    let mut previous: Option<DateTime<Utc>> = None;
    for (i, step) in steps.iter().enumerate() {
        tollgate_core::period::check_instants(&[(&format!("steps[{i}].at"), Some(step.at))])?;
        if let Some(before) = previous.filter(|before| step.at < *before) {
            return Err(bad_input(format!(
                "steps[{i}].at: `{}` is before the previous step's `{}`",
                instant(step.at),
                instant(before)
            )));
        }
        previous = Some(step.at);
        if ops::find(&step.op).is_none() {
            return Err(bad_input(format!(
                "steps[{i}].op: unknown operation `{}`",
                step.op
            )));
        }
        if let Some(expect) = &step.expect {
            let one_of = expect.as_object().is_some_and(|map| {
                map.len() == 1 && (map.contains_key("result") || map.contains_key("error"))
            });
            if !one_of {
                return Err(bad_input(format!(
                    "steps[{i}].expect: expected an object holding exactly one of `result` and `error`"
                )));
            }
        }
    }
    Ok(())
}

fn instant(t: DateTime<Utc>) -> String {
    match view::instant(t) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn error_json(error: &Error) -> Value {
    json!({"code": error.code().as_str(), "message": error.message()})
}

/// Plays the scenario and returns the exit code: 0 when it ran (and matched, with
/// `--check`), 1 for a malformed scenario or a mismatch.
pub fn run(options: &Options, out: &mut impl Write, err: &mut impl Write) -> u8 {
    let loaded = match load(&options.path) {
        Ok(loaded) => loaded,
        Err(error) => {
            let _ = writeln!(err, "{error}");
            return 1;
        }
    };
    let mut printer = Printer {
        out,
        format: options.format,
    };
    match play(&loaded, options.check, &mut printer) {
        Ok(()) => 0,
        Err(failure) => {
            let _ = writeln!(err, "{failure}");
            1
        }
    }
}

struct Printer<'w, W> {
    out: &'w mut W,
    format: Format,
}

impl<W: Write> Printer<'_, W> {
    fn line(&mut self, line: &str) {
        // A closed pipe is not worth a panic; the exit code still tells.
        let _ = writeln!(self.out, "{line}");
    }

    fn event(&mut self, event: &Value) {
        match self.format {
            Format::Json => self.line(&json!({ "event": event }).to_string()),
            Format::Table => self.line(&table::event(event)),
        }
    }

    fn step(&mut self, index: usize, step: &Step, output: &Value, checked: bool) {
        let at = instant(step.at);
        match self.format {
            Format::Json => {
                let (key, value) = match (output.get("result"), output.get("error")) {
                    (Some(result), _) => ("result", result),
                    (None, Some(error)) => ("error", error),
                    (None, None) => ("result", &Value::Null),
                };
                self.line(&format!(
                    "{{\"step\":{index},\"at\":{},\"op\":{},\"{key}\":{value}}}",
                    Value::String(at),
                    Value::String(step.op.clone()),
                ));
            }
            Format::Table => self.line(&table::step(index, &at, &step.op, output, checked)),
        }
    }
}

fn play<W: Write>(
    loaded: &Loaded,
    check: bool,
    printer: &mut Printer<'_, W>,
) -> Result<(), String> {
    let engine = &loaded.engine;
    let start = loaded
        .steps
        .first()
        .map_or(DateTime::<Utc>::UNIX_EPOCH, |s| s.at);
    for (i, customer) in loaded.customers.iter().enumerate() {
        block_on(engine.provision_customer(customer, start, None))
            .map_err(|e| format!("customers[{i}]: {e}"))?;
    }
    if printer.format == Format::Table {
        printer.line(&table::heading());
    }
    for (index, step) in loaded.steps.iter().enumerate() {
        for event in &advance(engine, step.at) {
            printer.event(event);
        }
        let context = Context {
            engine,
            fallback: &loaded.fallback,
            now: step.at,
        };
        let output = match ops::run(&context, &step.op, step.input.as_ref()) {
            Ok(result) => json!({ "result": result }),
            Err(error) => json!({ "error": error_json(&error) }),
        };
        let difference = match (&step.expect, check) {
            (Some(expect), true) => first_difference(expect, Some(&output), ""),
            _ => None,
        };
        printer.step(
            index,
            step,
            &output,
            check && step.expect.is_some() && difference.is_none(),
        );
        if let Some(difference) = difference {
            return Err(mismatch(index, step, &output, &difference));
        }
    }
    Ok(())
}

/// Moves every customer's clock to `to`; the transitions, in time order, as event objects.
/// Each customer moves on its own: one whose clock cannot move (a renewal past the last
/// representable date, say) stays where it was, and its own operations answer with that
/// error (each brings the customer to its instant first); the others go on.
fn advance(engine: &RunEngine, to: DateTime<Utc>) -> Vec<Value> {
    let mut events = Vec::new();
    for customer in engine.storage().customer_ids() {
        let Ok(moved) = block_on(engine.advance(&customer, to)) else {
            continue;
        };
        for event in moved {
            let mut object = Map::new();
            object.insert("type".to_owned(), view::name(&event.kind));
            object.insert("at".to_owned(), view::instant(event.at));
            object.insert("customerId".to_owned(), json!(customer.as_str()));
            object.insert(
                "subscriptionId".to_owned(),
                json!(event.subscription.as_str()),
            );
            if let Some(feature) = &event.feature {
                object.insert("featureId".to_owned(), json!(feature.as_str()));
            }
            if let Some(invoice) = &event.invoice {
                object.insert("invoice".to_owned(), view::invoice(invoice));
            }
            events.push((event.at, Value::Object(object)));
        }
    }
    // Stable: at one instant, customers in id order, each customer's events in its order.
    events.sort_by_key(|(at, _)| *at);
    events.into_iter().map(|(_, object)| object).collect()
}

fn mismatch(index: usize, step: &Step, output: &Value, difference: &Difference) -> String {
    // An error where a result was expected (or the reverse) shows the whole output.
    let actual = match &difference.actual {
        Some(value) => value.to_string(),
        None if difference.path.contains('.') || difference.path.contains('[') => {
            "(absent)".to_owned()
        }
        None => output.to_string(),
    };
    format!(
        "step {index} (`{}` at {}) does not match its expectation\n  at:       {}\n  expected: {}\n  actual:   {actual}",
        step.op,
        instant(step.at),
        difference.path,
        difference.expected,
    )
}

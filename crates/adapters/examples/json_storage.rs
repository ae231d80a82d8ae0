//! A host's storage that keeps each customer's state as JSON text beside its version, as a
//! row of a database table would, each idempotency record as JSON text under its key, and
//! the promotion-code redemption counts as one JSON document.
//!
//! It passes the storage and engine conformance checks; run it to see the row a paid
//! subscription leaves:
//!
//! ```sh
//! cargo run -p tollgate-adapters --example json_storage
//! ```

use pollster::block_on;
use std::collections::BTreeMap;
use std::future::{Future, ready};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tollgate_adapters::conformance::{self, BillingFixture};
use tollgate_adapters::{
    Commit, Engine, Error, IdempotencyKey, Recorded, Saved, ScriptedBilling, Storage, Stored,
    Version,
};
use tollgate_core::Catalog;
use tollgate_core::coupon::Redemptions;
use tollgate_core::customer::CustomerState;
use tollgate_core::id::CustomerId;
use tollgate_core::journey::ProvisionCustomerRequest;
use tollgate_core::provision::ProvisionRequest;
use tollgate_core::settings::Settings;

/// The tables: what a database would hold.
#[derive(Debug, Default)]
struct Tables {
    /// Customer id → (version, the state's JSON).
    customers: BTreeMap<String, (u64, String)>,
    /// The redemption counts' JSON (`{"CODE": count}`); empty before the first.
    redemptions: String,
    /// Idempotency key → the recorded operation's JSON.
    recorded: BTreeMap<String, String>,
    last_version: u64,
}

/// Storage over JSON text; one lock stands for the database's transaction.
#[derive(Debug, Default)]
struct JsonStorage {
    tables: Mutex<Tables>,
}

impl JsonStorage {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored JSON of `customer`'s state.
    fn row(&self, customer: &str) -> Option<String> {
        self.tables()
            .customers
            .get(customer)
            .map(|(_, json)| json.clone())
    }
}

fn redemptions_of(tables: &Tables) -> Result<Redemptions, Error> {
    if tables.redemptions.is_empty() {
        return Ok(Redemptions::new());
    }
    serde_json::from_str(&tables.redemptions)
        .map_err(|e| Error::storage(format!("stored redemptions do not load: {e}")))
}

/// Loads and saves one commit, in one transaction.
fn save(tables: &mut Tables, commit: Commit) -> Result<Saved, Error> {
    let id = commit.state.customer.id.as_str();
    let current = tables.customers.get(id).map(|(v, _)| Version::new(*v));
    let key_taken = commit
        .idempotency
        .as_ref()
        .is_some_and(|(key, _)| tables.recorded.contains_key(key.as_str()));
    if current != commit.expected || key_taken {
        return Ok(Saved::Conflict);
    }
    let mut counts = redemptions_of(tables)?;
    // Codes given back are released before the commit's redemptions are counted.
    for code in &commit.released {
        counts.release(code);
    }
    for redemption in &commit.redeemed {
        counts.record(&redemption.code);
        if redemption
            .max
            .is_some_and(|max| counts.count(&redemption.code) > max)
        {
            return Ok(Saved::Exhausted(redemption.code.clone()));
        }
    }
    let state = serde_json::to_string(&commit.state)
        .map_err(|e| Error::storage(format!("the state of `{id}` does not serialize: {e}")))?;
    let redemptions = serde_json::to_string(&counts)
        .map_err(|e| Error::storage(format!("redemptions do not serialize: {e}")))?;
    let recorded = match &commit.idempotency {
        Some((key, recorded)) => Some((
            key.as_str().to_owned(),
            serde_json::to_string(recorded).map_err(|e| {
                Error::storage(format!("the record of `{key}` does not serialize: {e}"))
            })?,
        )),
        None => None,
    };
    tables.last_version = tables.last_version.saturating_add(1);
    let version = tables.last_version;
    tables.customers.insert(id.to_owned(), (version, state));
    tables.redemptions = redemptions;
    if let Some((key, recorded)) = recorded {
        tables.recorded.insert(key, recorded);
    }
    Ok(Saved::Committed(Version::new(version)))
}

impl Storage for JsonStorage {
    fn load(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<Option<Stored>, Error>> + Send {
        let loaded = self
            .tables()
            .customers
            .get(customer.as_str())
            .map(|(version, json)| {
                let state: CustomerState = serde_json::from_str(json).map_err(|e| {
                    Error::storage(format!(
                        "the stored state of `{customer}` does not load: {e}"
                    ))
                })?;
                Ok(Stored {
                    state,
                    version: Version::new(*version),
                })
            });
        ready(loaded.transpose())
    }

    fn save(&self, commit: Commit) -> impl Future<Output = Result<Saved, Error>> + Send {
        ready(save(&mut self.tables(), commit))
    }

    fn recorded(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<Recorded>, Error>> + Send {
        let loaded = self.tables().recorded.get(key.as_str()).map(|json| {
            serde_json::from_str(json)
                .map_err(|e| Error::storage(format!("the record of `{key}` does not load: {e}")))
        });
        ready(loaded.transpose())
    }

    fn redemptions(&self) -> impl Future<Output = Result<Redemptions, Error>> + Send {
        ready(redemptions_of(&self.tables()))
    }
}

/// Runs the conformance checks on the storage, then provisions a paid subscription through
/// the engine and returns the customer's stored row.
fn run() -> Result<String, Box<dyn std::error::Error>> {
    let storage = JsonStorage::default();
    block_on(conformance::storage(&storage, "first"))?;
    block_on(conformance::storage(&storage, "second"))?;
    let billing = ScriptedBilling::new();
    let fixture = BillingFixture::example();
    billing.set_payment_method(&fixture.with_payment_method, true);
    block_on(conformance::engine(
        JsonStorage::default(),
        billing,
        &fixture,
    ))?;

    let catalog = Catalog::from_json(
        br#"{"products": [{"id": "app"}],
             "plans": [{"id": "basic", "productId": "app", "version": 1, "pricingType": "PAID",
                        "prices": [{"billingPeriod": "MONTHLY", "model": "FLAT_FEE", "amount": 10, "currency": "USD"}]}],
             "coupons": [{"id": "launch", "type": "PERCENTAGE", "percentOff": 20, "duration": "FOREVER",
                          "promotionCodes": [{"code": "LAUNCH20", "maxRedemptions": 100}]}]}"#,
    )?;
    let billing = ScriptedBilling::new();
    billing.set_payment_method(&CustomerId::new("c1"), true);
    let engine = Engine::new(catalog, Settings::default(), storage, billing);
    let now = "2025-01-01T00:00:00Z".parse()?;
    let customer: ProvisionCustomerRequest =
        serde_json::from_str(r#"{"customerId": "c1", "hasPaymentMethod": true}"#)?;
    block_on(engine.provision_customer(&customer, now, None))?;
    let request: ProvisionRequest = serde_json::from_str(
        r#"{"customerId": "c1", "planId": "basic", "billingPeriod": "MONTHLY",
            "promotionCode": "LAUNCH20", "subscriptionId": "s1"}"#,
    )?;
    block_on(engine.provision_subscription(&request, now, None))?;
    let row = engine.storage().row("c1").ok_or("no row for `c1`")?;
    let redemptions = block_on(engine.storage().redemptions())?;
    if redemptions.count("LAUNCH20") != 1 {
        return Err("`LAUNCH20` was not counted once".into());
    }
    Ok(row)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let row = run()?;
    let state: CustomerState = serde_json::from_str(&row)?;
    println!("{}", serde_json::to_string_pretty(&state)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_storage_passes_the_conformance_checks_and_stores_a_state_that_loads() {
        let row = super::run().map_err(|e| e.to_string());
        assert!(row.is_ok(), "{row:?}");
    }
}

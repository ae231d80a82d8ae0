//! In-memory storage and a scripted billing provider: the embedded defaults, used by
//! `tollgate run` and by tests. Both are `Mutex`-based and can be shared between threads.

use crate::billing::{Billing, CheckoutId};
use crate::error::Error;
use crate::storage::{
    Commit, IdempotencyKey, Recorded, Redemption, Saved, Storage, Stored, Version,
};
use std::collections::{BTreeMap, BTreeSet};
use std::future::{Future, ready};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tollgate_core::ErrorCode;
use tollgate_core::coupon::Redemptions;
use tollgate_core::id::CustomerId;
use tollgate_core::invoice::Invoice;
use tollgate_core::provision::{CheckoutRequest, Effects};

/// Every lock here guards plain data updated without a panic path, so a poisoned lock
/// still holds consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct Tables {
    customers: BTreeMap<CustomerId, Stored>,
    recorded: BTreeMap<IdempotencyKey, Recorded>,
    redemptions: Redemptions,
    last_version: u64,
}

/// Storage in memory. Versions count saves across all customers, so no two saved states
/// share one.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    tables: Mutex<Tables>,
}

impl MemoryStorage {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The ids of every stored customer, sorted.
    #[must_use]
    pub fn customer_ids(&self) -> Vec<CustomerId> {
        lock(&self.tables).customers.keys().cloned().collect()
    }
}

impl Storage for MemoryStorage {
    fn load(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<Option<Stored>, Error>> + Send {
        ready(Ok(lock(&self.tables).customers.get(customer).cloned()))
    }

    fn save(&self, commit: Commit) -> impl Future<Output = Result<Saved, Error>> + Send {
        let mut tables = lock(&self.tables);
        let current = tables
            .customers
            .get(&commit.state.customer.id)
            .map(|s| s.version);
        let key_taken = commit
            .idempotency
            .as_ref()
            .is_some_and(|(key, _)| tables.recorded.contains_key(key));
        // The counts with the commit's released codes given back, when it has any.
        let given_back =
            (!commit.released.is_empty()).then(|| released(&tables.redemptions, &commit.released));
        let saved = if current != commit.expected || key_taken {
            Saved::Conflict
        } else if let Some(code) = past_max(
            given_back.as_ref().unwrap_or(&tables.redemptions),
            &commit.redeemed,
        ) {
            Saved::Exhausted(code)
        } else {
            tables.last_version = tables.last_version.saturating_add(1);
            let version = Version::new(tables.last_version);
            if let Some(counts) = given_back {
                tables.redemptions = counts;
            }
            for redemption in &commit.redeemed {
                tables.redemptions.record(&redemption.code);
            }
            if let Some((key, recorded)) = commit.idempotency {
                tables.recorded.insert(key, recorded);
            }
            tables.customers.insert(
                commit.state.customer.id.clone(),
                Stored {
                    state: commit.state,
                    version,
                },
            );
            Saved::Committed(version)
        };
        ready(Ok(saved))
    }

    fn recorded(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<Recorded>, Error>> + Send {
        ready(Ok(lock(&self.tables).recorded.get(key).cloned()))
    }

    fn redemptions(&self) -> impl Future<Output = Result<Redemptions, Error>> + Send {
        ready(Ok(lock(&self.tables).redemptions.clone()))
    }
}

/// `counts` with one redemption of each `released` code given back.
fn released(counts: &Redemptions, released: &[String]) -> Redemptions {
    let mut counts = counts.clone();
    for code in released {
        counts.release(code);
    }
    counts
}

/// The first code that counting `redeemed` onto `counts` would take past its maximum.
fn past_max(counts: &Redemptions, redeemed: &[Redemption]) -> Option<String> {
    let mut added = Redemptions::new();
    redeemed.iter().find_map(|redemption| {
        let code = redemption.code.as_str();
        added.record(code);
        let total = counts.count(code).saturating_add(added.count(code));
        redemption
            .max
            .is_some_and(|max| total > max)
            .then(|| code.to_owned())
    })
}

/// A call the scripted provider received.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BillingCall {
    /// [`Billing::has_payment_method`].
    HasPaymentMethod(CustomerId),
    /// [`Billing::create_checkout`].
    CreateCheckout(CustomerId, CheckoutRequest),
    /// [`Billing::apply`].
    Apply(CustomerId, Box<Effects>),
    /// [`Billing::void`].
    Void(CustomerId, Box<Effects>),
    /// [`Billing::validate_promotion_code`].
    ValidatePromotionCode(String),
}

/// One recorded call and whether it was told to fail.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Its number: 1 for the provider's first call.
    pub number: usize,
    /// What was asked.
    pub call: BillingCall,
    /// Whether it failed (and so changed nothing).
    pub failed: bool,
}

#[derive(Debug, Default)]
struct Script {
    calls: Vec<Call>,
    failing: BTreeSet<usize>,
    payment_methods: BTreeSet<CustomerId>,
    rejected_codes: BTreeSet<String>,
    declining: BTreeSet<CustomerId>,
    checkouts: u64,
}

/// A billing provider that answers from a script and records every call.
///
/// It knows no payment method until told ([`ScriptedBilling::set_payment_method`]),
/// accepts every promotion code it was not told to reject, names checkouts `checkout-1`,
/// `checkout-2`, … in order, and fails exactly the calls it was told to fail
/// ([`ScriptedBilling::fail_call`]) with `BillingProviderError` and declines the charges
/// it was told to decline ([`ScriptedBilling::decline_charges`]), changing nothing. A void
/// takes back the latest application of the same effects to the customer that is still in
/// force, if any.
#[derive(Debug, Default)]
pub struct ScriptedBilling {
    script: Mutex<Script>,
}

impl ScriptedBilling {
    /// A provider with no payment method on file and no failure scripted.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the provider's call number `number` (1 for its first call) fail.
    pub fn fail_call(&self, number: usize) {
        lock(&self.script).failing.insert(number);
    }

    /// Records whether the customer has a payment method on file.
    pub fn set_payment_method(&self, customer: &CustomerId, has: bool) {
        let mut script = lock(&self.script);
        if has {
            script.payment_methods.insert(customer.clone());
        } else {
            script.payment_methods.remove(customer);
        }
    }

    /// Makes the provider decline (or accept again) the customer's card: an application
    /// whose invoice charges more than zero fails with `PaymentMethodNotFound`, changing
    /// nothing, while its payment method stays on file.
    pub fn decline_charges(&self, customer: &CustomerId, declining: bool) {
        let mut script = lock(&self.script);
        if declining {
            script.declining.insert(customer.clone());
        } else {
            script.declining.remove(customer);
        }
    }

    /// Makes the provider refuse `code`.
    pub fn reject_promotion_code(&self, code: &str) {
        lock(&self.script).rejected_codes.insert(code.to_owned());
    }

    /// Every call so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.script).calls.clone()
    }

    /// The invoices charged by applications that went through and were not voided since,
    /// in order.
    #[must_use]
    pub fn charged(&self) -> Vec<Invoice> {
        let script = lock(&self.script);
        let mut in_force: Vec<(&CustomerId, &Effects)> = Vec::new();
        for call in script.calls.iter().filter(|c| !c.failed) {
            match &call.call {
                BillingCall::Apply(customer, effects) => in_force.push((customer, effects)),
                BillingCall::Void(customer, effects) => {
                    let voided = (customer, &**effects);
                    if let Some(at) = in_force.iter().rposition(|applied| *applied == voided) {
                        in_force.remove(at);
                    }
                }
                _ => {}
            }
        }
        in_force
            .into_iter()
            .filter_map(|(_, effects)| effects.invoice.clone())
            .collect()
    }

    /// Records `call` and answers it with `answer` unless it is scripted to fail.
    fn call<T>(
        &self,
        call: BillingCall,
        answer: impl FnOnce(&mut Script) -> T,
    ) -> Result<T, Error> {
        let mut script = lock(&self.script);
        let number = script.calls.len().saturating_add(1);
        let declined = match &call {
            BillingCall::Apply(customer, effects) => {
                script.declining.contains(customer)
                    && effects
                        .invoice
                        .as_ref()
                        .is_some_and(|i| i.total.is_sign_positive() && !i.total.is_zero())
            }
            _ => false,
        };
        if declined {
            script.calls.push(Call {
                number,
                call,
                failed: true,
            });
            return Err(Error::new(
                ErrorCode::PaymentMethodNotFound,
                format!("billing call {number} (`apply`): the card was declined"),
            ));
        }
        let failed = script.failing.contains(&number);
        let name = match &call {
            BillingCall::HasPaymentMethod(_) => "hasPaymentMethod",
            BillingCall::CreateCheckout(..) => "createCheckout",
            BillingCall::Apply(..) => "apply",
            BillingCall::Void(..) => "void",
            BillingCall::ValidatePromotionCode(_) => "validatePromotionCode",
        };
        script.calls.push(Call {
            number,
            call,
            failed,
        });
        if failed {
            Err(Error::billing(format!(
                "billing call {number} (`{name}`) failed as scripted"
            )))
        } else {
            Ok(answer(&mut script))
        }
    }
}

impl Billing for ScriptedBilling {
    fn has_payment_method(
        &self,
        customer: &CustomerId,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        ready(
            self.call(BillingCall::HasPaymentMethod(customer.clone()), |s| {
                s.payment_methods.contains(customer)
            }),
        )
    }

    fn create_checkout(
        &self,
        customer: &CustomerId,
        checkout: &CheckoutRequest,
    ) -> impl Future<Output = Result<CheckoutId, Error>> + Send {
        ready(self.call(
            BillingCall::CreateCheckout(customer.clone(), checkout.clone()),
            |s| {
                s.checkouts = s.checkouts.saturating_add(1);
                CheckoutId::new(format!("checkout-{}", s.checkouts))
            },
        ))
    }

    fn apply(
        &self,
        customer: &CustomerId,
        effects: &Effects,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        ready(self.call(
            BillingCall::Apply(customer.clone(), Box::new(effects.clone())),
            |_| (),
        ))
    }

    fn void(
        &self,
        customer: &CustomerId,
        effects: &Effects,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        ready(self.call(
            BillingCall::Void(customer.clone(), Box::new(effects.clone())),
            |_| (),
        ))
    }

    fn validate_promotion_code(
        &self,
        code: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        ready(
            self.call(BillingCall::ValidatePromotionCode(code.to_owned()), |s| {
                !s.rejected_codes.contains(code)
            }),
        )
    }
}

//! One async lock per customer, so that an engine never runs two writes of one customer at
//! once: the second waits for the first instead of deciding on the same version, and so
//! never bills a decision its save would then have to throw away.
//!
//! The map keeps a lock only while someone holds or waits for it, so it is as large as the
//! number of customers being written right now, however many customers there are.

use async_lock::{Mutex as AsyncMutex, MutexGuardArc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tollgate_core::id::CustomerId;

type Lock = Arc<AsyncMutex<()>>;

/// The locks of the customers being written.
#[derive(Debug, Default)]
pub(crate) struct CustomerLocks {
    /// Handles are cloned only under this mutex, which is what makes the count of
    /// [`Entry::drop`] trustworthy.
    locks: Mutex<HashMap<CustomerId, Lock>>,
}

impl CustomerLocks {
    /// Waits until no one else holds `customer`'s lock and takes it; it is released when
    /// the answer is dropped, also when the wait itself is dropped unfinished.
    pub(crate) async fn lock(&self, customer: &CustomerId) -> Held<'_> {
        let entry = Entry::new(self, customer);
        let guard = entry.lock.lock_arc().await;
        Held {
            _guard: guard,
            _entry: entry,
        }
    }

    /// How many customers have a lock in the map.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<CustomerId, Lock>> {
        // The map is only read and written whole under the mutex, without a panic path
        // in between, so a poisoned one is still consistent.
        self.locks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A customer's lock, held until dropped.
#[derive(Debug)]
pub(crate) struct Held<'a> {
    // Fields drop in order: the lock is released before the entry asks whether anyone
    // still needs it.
    _guard: MutexGuardArc<()>,
    _entry: Entry<'a>,
}

/// A handle on a customer's lock that takes the lock out of the map when it is the last.
#[derive(Debug)]
struct Entry<'a> {
    locks: &'a CustomerLocks,
    customer: CustomerId,
    lock: Lock,
}

impl<'a> Entry<'a> {
    fn new(locks: &'a CustomerLocks, customer: &CustomerId) -> Self {
        let lock = Arc::clone(locks.map().entry(customer.clone()).or_default());
        Self {
            locks,
            customer: customer.clone(),
            lock,
        }
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.map();
        // Two handles, the map's and this one, mean nobody else holds or waits for the
        // lock; none can appear meanwhile, as handles are only cloned under `map`.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.customer);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn poll<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn id(text: &str) -> CustomerId {
        CustomerId::new(text)
    }

    #[test]
    fn a_released_lock_leaves_the_map() {
        let locks = CustomerLocks::default();
        for n in 0..100 {
            let held = pollster::block_on(locks.lock(&id(&format!("c{n}"))));
            assert_eq!(locks.len(), 1);
            drop(held);
        }
        assert_eq!(locks.len(), 0);
    }

    #[test]
    fn a_second_writer_of_one_customer_waits_and_others_do_not() {
        let locks = CustomerLocks::default();
        let c1 = id("c1");
        let first = pollster::block_on(locks.lock(&c1));
        let mut second = pin!(locks.lock(&c1));
        assert!(poll(second.as_mut()).is_pending());
        // Another customer is not held up.
        let other = pollster::block_on(locks.lock(&id("c2")));
        assert_eq!(locks.len(), 2);
        drop(other);
        assert!(poll(second.as_mut()).is_pending());
        // The waiter keeps the entry when the first lets go, and takes the lock.
        drop(first);
        assert_eq!(locks.len(), 1);
        let Poll::Ready(held) = poll(second.as_mut()) else {
            panic!("the waiter did not get the released lock");
        };
        drop(held);
        assert_eq!(locks.len(), 0);
    }

    #[test]
    fn a_wait_dropped_unfinished_leaves_nothing_behind() {
        let locks = CustomerLocks::default();
        let c1 = id("c1");
        let first = pollster::block_on(locks.lock(&c1));
        {
            let mut waiting = pin!(locks.lock(&c1));
            assert!(poll(waiting.as_mut()).is_pending());
        }
        drop(first);
        assert_eq!(locks.len(), 0);
        // And the other way round: the holder leaves first, then the waiter gives up.
        let first = pollster::block_on(locks.lock(&c1));
        let mut waiting = Box::pin(locks.lock(&c1));
        assert!(poll(waiting.as_mut()).is_pending());
        drop(first);
        drop(waiting);
        assert_eq!(locks.len(), 0);
    }
}

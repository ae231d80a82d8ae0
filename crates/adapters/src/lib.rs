//! Billing and storage adapters for Tollgate.
//!
//! The traits a host implements for its billing provider and its storage, the engine that runs
//! core decisions through them, and in-memory implementations are added here as the decision
//! operations that need them exist.

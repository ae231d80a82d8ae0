//! Generators shared by the criterion benchmarks.

//! Placeholder: the workload generator is being written.

//! Faults are data, each kind applied in one place:
//!
//! | what is wrong | the data | where it is applied |
//! |---|---|---|
//! | Part A's Inventory is slow, fails or hangs | `campus::faults::FaultPlan` | the production crate's fault layer (`campus::faults`), around Inventory's router, in the world and in a process alike |
//! | a service instance, a broker or a node is taken away | `hosts::Away`, `World::kill` | the hosts (`crate::hosts::Hosts`): the world drops it, real mode stops it |
//! | a consumer crashes between two steps | [`queue::QueueCrash`], [`log::LogCrash`] | the [`queue::CrashingQueue`] and [`log::CrashingLog`] transports (`campus-sim explore`; in a real process too, by [`served::ServedFaults`]) |
//!
//! Every one of them is recorded in the run's trace ([`trace::Trace`]) when the run keeps one.

pub mod log;
pub mod queue;
pub mod served;
pub mod trace;

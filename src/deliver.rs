//! Delivering a batch of records: each record, in order, runs on every function hooked to it,
//! and what happened to each record decides what Lambda is told.
//!
//! - A record succeeds when every function hooked to it succeeded; a record no function is
//!   hooked to fails.
//! - In an ordered batch (a FIFO queue, a stream shard) the first failure stops the batch: later
//!   records are not run, since running them would apply them out of order, and are reported
//!   failed so Lambda retries them.
//! - When the invocation deadline leaves no time, the records not yet started are not run and
//!   are reported failed, rather than started and cut off by Lambda's own timeout.
//!
//! Nothing is dropped: every record ends [`Outcome::Delivered`], [`Outcome::Failed`] or
//! [`Outcome::NotRun`], and only the first is reported as done.

use std::future::Future;

use crate::error::Error;

/// What happened to one record.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered,
    Failed(Error),
    /// Not started, for the reason given.
    NotRun(String),
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        matches!(self, Outcome::Delivered)
    }
}

/// Runs `count` records through `run` (given each record's index), one after another. In an
/// `ordered` batch the first failure stops the batch; once `has_time` says the deadline leaves
/// no time, the remaining records are not started.
pub async fn deliver<F, Fut>(
    count: usize,
    ordered: bool,
    has_time: impl Fn() -> bool,
    mut run: F,
) -> Vec<Outcome>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<(), Error>>,
{
    let mut outcomes = Vec::with_capacity(count);
    let mut stopped: Option<String> = None;
    for index in 0..count {
        if stopped.is_none() && !has_time() {
            stopped = Some("the invocation deadline left no time to run it".to_string());
        }
        if let Some(reason) = &stopped {
            outcomes.push(Outcome::NotRun(reason.clone()));
            continue;
        }
        match run(index).await {
            Ok(()) => outcomes.push(Outcome::Delivered),
            Err(error) => {
                if ordered {
                    stopped = Some(format!(
                        "record {index} before it failed, and this batch runs in order"
                    ));
                }
                outcomes.push(Outcome::Failed(error));
            }
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::{Cell, RefCell};

    fn failure(index: usize) -> Error {
        Error::FunctionError {
            function: "f".to_string(),
            reason: format!("record {index}"),
        }
    }

    /// Runs a batch whose records fail where `fails` says, with time for `time_for` records.
    fn run(fails: &[bool], ordered: bool, time_for: usize) -> (Vec<Outcome>, Vec<usize>) {
        let ran = RefCell::new(Vec::new());
        let started = Cell::new(0);
        let outcomes = futures::executor::block_on(deliver(
            fails.len(),
            ordered,
            || started.get() < time_for,
            |index| {
                started.set(started.get() + 1);
                ran.borrow_mut().push(index);
                let failed = fails[index];
                async move { if failed { Err(failure(index)) } else { Ok(()) } }
            },
        ));
        (outcomes, ran.into_inner())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Every record gets exactly one outcome, a record is reported done only if it ran and
        /// succeeded, and a record that failed is never reported done.
        #[test]
        fn nothing_is_lost_and_nothing_failed_is_reported_done(
            fails in proptest::collection::vec(any::<bool>(), 0..40),
            ordered in any::<bool>(),
            time_for in 0usize..45,
        ) {
            let (outcomes, ran) = run(&fails, ordered, time_for);
            prop_assert_eq!(outcomes.len(), fails.len());
            // Each record ran at most once, in order.
            prop_assert!(ran.windows(2).all(|w| w[0] < w[1]));
            let first_failure = fails.iter().position(|f| *f);
            for (index, outcome) in outcomes.iter().enumerate() {
                let did_run = ran.contains(&index);
                match outcome {
                    Outcome::Delivered => prop_assert!(did_run && !fails[index]),
                    Outcome::Failed(_) => prop_assert!(did_run && fails[index]),
                    Outcome::NotRun(_) => prop_assert!(!did_run),
                }
                // What decides whether a record runs: time, and in order the first failure.
                let expected_run = index < time_for
                    && !(ordered && first_failure.is_some_and(|first| index > first));
                prop_assert_eq!(did_run, expected_run, "record {}", index);
            }
        }
    }

    #[test]
    fn an_unordered_batch_runs_past_failures_and_an_ordered_one_stops() {
        let fails = [false, true, false, true];
        let (outcomes, ran) = run(&fails, false, usize::MAX);
        assert_eq!(ran, [0, 1, 2, 3]);
        let delivered: Vec<bool> = outcomes.iter().map(Outcome::delivered).collect();
        assert_eq!(delivered, [true, false, true, false]);

        let (outcomes, ran) = run(&fails, true, usize::MAX);
        assert_eq!(ran, [0, 1]);
        assert!(matches!(&outcomes[2], Outcome::NotRun(why) if why.contains("record 1")));
        assert!(matches!(outcomes[3], Outcome::NotRun(_)));
    }
}

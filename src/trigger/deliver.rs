//! Delivering a batch of records: each record, in order, runs on every function hooked to it,
//! and what happened to each record decides what Lambda is told.
//!
//! - A record succeeds when every function hooked to it succeeded; a record no function is
//!   hooked to fails.
//! - In an ordered batch (a FIFO queue, a stream shard, a Kafka partition) a failure stops its
//!   partition: the partition's later records are not run, since running them would apply them
//!   out of order, and are reported failed so Lambda retries them. Records of other partitions
//!   go on.
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
    /// Delivered; the output of the first function hooked to it.
    Delivered(Vec<u8>),
    Failed(Error),
    /// Not started, for the reason given.
    NotRun(String),
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        matches!(self, Outcome::Delivered(_))
    }
}

/// Runs the records whose partitions are `partitions` through `run` (given each record's
/// index), one after another. In an `ordered` batch a failure stops the record's partition (a
/// record without one is in the batch's one sequence); once `has_time` says the deadline leaves
/// no time, the remaining records are not started.
pub async fn deliver<F, Fut>(
    partitions: &[Option<&str>],
    ordered: bool,
    has_time: impl Fn() -> bool,
    mut run: F,
) -> Vec<Outcome>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, Error>>,
{
    let mut outcomes = Vec::with_capacity(partitions.len());
    let mut out_of_time = false;
    // Partitions stopped by a failure, and the record that failed.
    let mut stopped: Vec<(Option<&str>, usize)> = Vec::new();
    for (index, partition) in partitions.iter().enumerate() {
        if !out_of_time && !has_time() {
            out_of_time = true;
        }
        if out_of_time {
            outcomes.push(Outcome::NotRun(
                "the invocation deadline left no time to run it".to_string(),
            ));
            continue;
        }
        if let Some((_, failed)) = stopped.iter().find(|(p, _)| p == partition) {
            outcomes.push(Outcome::NotRun(format!(
                "record {failed} before it failed, and this batch runs in order"
            )));
            continue;
        }
        match run(index).await {
            Ok(output) => outcomes.push(Outcome::Delivered(output)),
            Err(error) => {
                if ordered {
                    stopped.push((*partition, index));
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
        let partitions = vec![None; fails.len()];
        let outcomes = futures::executor::block_on(deliver(
            &partitions,
            ordered,
            || started.get() < time_for,
            |index| {
                started.set(started.get() + 1);
                ran.borrow_mut().push(index);
                let failed = fails[index];
                async move {
                    if failed {
                        Err(failure(index))
                    } else {
                        Ok(Vec::new())
                    }
                }
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
                    Outcome::Delivered(_) => prop_assert!(did_run && !fails[index]),
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

    #[test]
    fn a_failure_stops_only_its_own_partition() {
        let partitions = [Some("a"), Some("b"), Some("a"), Some("b")];
        let ran = RefCell::new(Vec::new());
        let outcomes = futures::executor::block_on(deliver(
            &partitions,
            true,
            || true,
            |index| {
                ran.borrow_mut().push(index);
                async move {
                    if index == 0 {
                        Err(failure(index))
                    } else {
                        Ok(Vec::new())
                    }
                }
            },
        ));
        assert_eq!(ran.into_inner(), [0, 1, 3]);
        assert!(matches!(&outcomes[2], Outcome::NotRun(why) if why.contains("record 0")));
        assert!(outcomes[3].delivered());
    }
}

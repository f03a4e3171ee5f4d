//! The runner's states (Synapse's `UpdaterStatus` numbering) and the one
//! transition table that moves between them, with a reason per transition.

use serde::{Serialize, Serializer};

/// Where a runner is. The numbers are Synapse's (used as a metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunnerState {
    Aborted,
    Disabled,
    NotStarted,
    RunningUpdate,
    Complete,
}

impl RunnerState {
    /// Synapse's number for the state.
    pub fn code(self) -> i32 {
        match self {
            RunnerState::Aborted => -1,
            RunnerState::Disabled => 0,
            RunnerState::NotStarted => 1,
            RunnerState::RunningUpdate => 2,
            RunnerState::Complete => 3,
        }
    }

    /// Synapse's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            RunnerState::Aborted => "ABORTED",
            RunnerState::Disabled => "DISABLED",
            RunnerState::NotStarted => "NOT_STARTED",
            RunnerState::RunningUpdate => "RUNNING_UPDATE",
            RunnerState::Complete => "COMPLETE",
        }
    }

    /// Every state but `Disabled` is enabled (the pause is a state, not a flag).
    pub fn is_enabled(self) -> bool {
        self != RunnerState::Disabled
    }
}

impl Serialize for RunnerState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What happened to a runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The loop (re)started and holds the database's lease.
    Start,
    /// Another runner holds this database's lease.
    LeaseBusy(String),
    /// A batch committed.
    BatchOk,
    /// A batch (or the work around it) failed; `consecutive` failures so far
    /// (below the limit).
    BatchFailed {
        consecutive: u32,
        error: String,
    },
    /// The failure limit was reached.
    TooManyFailures(String),
    /// The runner cannot go on without outside help (no handler, dependency cycle).
    Blocked(String),
    /// Nothing is pending.
    QueueEmpty,
    /// Paused (`persisted`: the pause is kept in the database).
    Pause {
        persisted: bool,
    },
    Resume,
    Shutdown,
}

/// Consecutive batch failures that abort the runner (Synapse's number).
pub const MAX_CONSECUTIVE_FAILURES: u32 = 5;

/// THE transition table: the next state and why, or `None` if `event` makes
/// no sense in `from` (the caller keeps the state and logs).
pub fn transition(from: RunnerState, event: &Event) -> Option<(RunnerState, String)> {
    use RunnerState::*;
    Some(match (from, event) {
        (NotStarted | Complete | Aborted, Event::Start) => {
            (RunningUpdate, "running background updates".to_owned())
        }
        (NotStarted | RunningUpdate, Event::LeaseBusy(holder)) => (
            NotStarted,
            format!("another runner holds this database ({holder}); waiting for its lease"),
        ),
        (RunningUpdate, Event::BatchOk) => (RunningUpdate, "running background updates".to_owned()),
        (NotStarted | RunningUpdate, Event::BatchFailed { consecutive, error }) => (
            from,
            format!("batch failed ({consecutive} of {MAX_CONSECUTIVE_FAILURES} in a row): {error}"),
        ),
        (NotStarted | RunningUpdate, Event::TooManyFailures(error)) => (
            Aborted,
            format!(
                "{MAX_CONSECUTIVE_FAILURES} back-to-back background update failures; aborting. \
                 Last error: {error}"
            ),
        ),
        (RunningUpdate, Event::Blocked(why)) => (Aborted, why.clone()),
        (RunningUpdate, Event::QueueEmpty) => {
            (Complete, "no more background updates to do".to_owned())
        }
        (_, Event::Pause { persisted }) => (
            Disabled,
            if *persisted {
                "paused (persisted in the database: survives restarts)".to_owned()
            } else {
                "paused".to_owned()
            },
        ),
        (Disabled, Event::Resume) => (NotStarted, "resumed".to_owned()),
        (_, Event::Shutdown) => (Disabled, "shut down".to_owned()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunnerState::*;

    const ALL: [RunnerState; 5] = [Aborted, Disabled, NotStarted, RunningUpdate, Complete];

    #[test]
    fn codes_are_synapses() {
        let codes: Vec<i32> = ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [-1, 0, 1, 2, 3]);
        assert_eq!(
            serde_json::to_string(&RunningUpdate).unwrap(),
            "\"RUNNING_UPDATE\""
        );
    }

    #[test]
    fn the_table() {
        let to = |s, e: Event| transition(s, &e).map(|(s, _)| s);
        assert_eq!(to(NotStarted, Event::Start), Some(RunningUpdate));
        assert_eq!(to(Complete, Event::Start), Some(RunningUpdate));
        assert_eq!(to(Aborted, Event::Start), Some(RunningUpdate));
        // A paused runner never starts a loop.
        assert_eq!(to(Disabled, Event::Start), None);
        assert_eq!(to(RunningUpdate, Event::Start), None);
        assert_eq!(to(RunningUpdate, Event::QueueEmpty), Some(Complete));
        assert_eq!(to(NotStarted, Event::QueueEmpty), None);
        assert_eq!(
            to(RunningUpdate, Event::TooManyFailures("x".into())),
            Some(Aborted)
        );
        assert_eq!(
            to(NotStarted, Event::TooManyFailures("x".into())),
            Some(Aborted)
        );
        assert_eq!(to(RunningUpdate, Event::BatchOk), Some(RunningUpdate));
        assert_eq!(to(Disabled, Event::BatchOk), None);
        assert_eq!(to(RunningUpdate, Event::Blocked("x".into())), Some(Aborted));
        assert_eq!(
            to(RunningUpdate, Event::LeaseBusy("h".into())),
            Some(NotStarted)
        );
        assert_eq!(to(Disabled, Event::Resume), Some(NotStarted));
        assert_eq!(to(RunningUpdate, Event::Resume), None);
        for s in ALL {
            assert_eq!(to(s, Event::Pause { persisted: false }), Some(Disabled));
            assert_eq!(to(s, Event::Shutdown), Some(Disabled));
            assert_eq!(s.is_enabled(), s != Disabled);
        }
        let (_, why) = transition(
            RunningUpdate,
            &Event::BatchFailed {
                consecutive: 2,
                error: "boom".into(),
            },
        )
        .unwrap();
        assert_eq!(why, "batch failed (2 of 5 in a row): boom");
    }
}

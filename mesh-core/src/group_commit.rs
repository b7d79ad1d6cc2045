//! Group commit: short transactions that arrive together share one database commit.
//!
//! Under load, the synchronous path's transactions (a reservation's intent and its
//! confirmation, a product lock) are each a few statements followed by a commit, and the
//! commit (a WAL flush, a round trip) is most of their cost; dozens are ready at the same
//! moment. A [`GroupCommit`] queues them; its worker takes every queued one (up to
//! [`MAX_GROUP`]), runs them in one transaction, commits once, then answers each. What each
//! member was promised still holds:
//!
//! * **All or nothing, each on its own.** A member that fails leaves no write behind; the
//!   others go on (after a failure the group is rolled back and its other members rerun, in
//!   savepoints; see `commit_group`).
//! * **Durable before answered.** Nobody hears "done" before the commit that made it so; a
//!   failed commit answers every member with the error, and none of them happened.
//! * **No added wait when idle.** A member that finds the worker idle runs at once, alone.
//!
//! One worker per group, so two groups of one service never wait on each other's row locks
//! (and cannot deadlock each other); the members of a group run one after the other, each a
//! few statements, which bounds a group's rate at thousands per second, above what the rest
//! of a service does. SQLite (one connection) gains nothing and loses nothing by it.

use diesel::connection::TransactionManager;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, DbConnection, DbError};
use crate::telemetry::catalog;

/// Most members in one commit: a bound on how long the last one waits for the others.
pub const MAX_GROUP: usize = 64;

/// Members waiting for the worker before callers wait to be queued.
const QUEUE: usize = 1024;

/// A queue of transactions sharing commits; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Box<dyn Member>>,
}

impl GroupCommit {
    /// A group committing through `db`; its worker runs until every handle is dropped.
    pub fn new(db: Db) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(work(db, waiting));
        Self { queue }
    }

    /// Runs `work` in a transaction of its own or as part of a shared one, and answers once
    /// its effect is committed (or with the error that undid it). `work` may run more than
    /// once (a group with a failed member is rolled back and rerun): only its last run's
    /// writes and result count, so it must do nothing outside the transaction.
    pub async fn transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: Fn(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let member = Box::new(Pending {
            work,
            result: None,
            answer,
            span: tracing::Span::current(),
        });
        if self.queue.send(member).await.is_err() {
            return Err(E::from(DbError::Task(
                "the group commit worker stopped".into(),
            )));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(E::from(DbError::Task("the group commit was lost".into()))))
    }
}

/// Takes what is queued (waiting for the first), runs it as one transaction, repeats.
async fn work(db: Db, mut waiting: mpsc::Receiver<Box<dyn Member>>) {
    while let Some(group) = next_group(&mut waiting).await {
        let ran = db
            .run(move |conn| -> Result<(), DbError> {
                commit_group(conn, group);
                Ok(())
            })
            .await;
        if let Err(err) = ran {
            // No connection: the members were dropped unanswered, and hear "lost".
            tracing::warn!(%err, "group commit could not run");
        }
    }
}

/// Runs the members as one transaction and answers each after the commit.
///
/// Members run bare while they succeed, the common case: a savepoint costs two round trips
/// (`SAVEPOINT`, `RELEASE`) per member, as many as the member's own statements. A member
/// that fails may have written before failing, and those writes must not commit: the
/// transaction is rolled back and begun again, the members before it run again (each in a
/// savepoint now: the rows may have moved meanwhile), the failed member keeps the answer it
/// got, and the members after it run in savepoints. So a refusal costs its group one
/// rollback and a re-run of the members ahead of it; what each member sees and answers is
/// what it would have seen alone at that moment.
fn commit_group(conn: &mut DbConnection, mut group: Vec<Box<dyn Member>>) {
    if group.len() == 1 {
        // Alone: its own transaction, no savepoint.
        if let Some(member) = group.into_iter().next() {
            member.run_alone(conn);
        }
        return;
    }
    if let Err(err) = begin(conn) {
        return fail_all(group, &err);
    }
    if let Some(failed) = group.iter_mut().position(|member| !member.run_bare(conn)) {
        let restarted = rollback(conn).and_then(|()| begin(conn));
        if let Err(err) = restarted {
            return fail_all(group, &err);
        }
        for (n, member) in group.iter_mut().enumerate() {
            if n != failed {
                member.run_in_savepoint(conn);
            }
        }
    }
    let committed = commit(conn);
    if committed.is_err() {
        let _ = rollback(conn);
    }
    for member in group {
        member.settle(committed.as_ref().err());
    }
}

/// The next group: waits for the first queued member, then takes every other one queued
/// (up to [`MAX_GROUP`]) without waiting; `None` once every handle is dropped. Counted in
/// the group commit metrics (batch commits' groups too).
pub(crate) async fn next_group<T>(queue: &mut mpsc::Receiver<T>) -> Option<Vec<T>> {
    let mut group = vec![queue.recv().await?];
    while group.len() < MAX_GROUP {
        match queue.try_recv() {
            Ok(member) => group.push(member),
            Err(_) => break,
        }
    }
    metrics::counter!(catalog::DB_GROUP_COMMITS).increment(1);
    metrics::counter!(catalog::DB_GROUP_COMMIT_MEMBERS).increment(group.len() as u64);
    Some(group)
}

pub(crate) fn begin(conn: &mut DbConnection) -> Result<(), DbError> {
    <DbConnection as diesel::Connection>::TransactionManager::begin_transaction(conn)
        .map_err(DbError::Query)
}

pub(crate) fn commit(conn: &mut DbConnection) -> Result<(), DbError> {
    <DbConnection as diesel::Connection>::TransactionManager::commit_transaction(conn)
        .map_err(DbError::Query)
}

pub(crate) fn rollback(conn: &mut DbConnection) -> Result<(), DbError> {
    <DbConnection as diesel::Connection>::TransactionManager::rollback_transaction(conn)
        .map_err(DbError::Query)
}

/// The group's transaction could not run: nobody's work happened.
fn fail_all(group: Vec<Box<dyn Member>>, err: &DbError) {
    for member in group {
        member.fail(err);
    }
}

/// A queued transaction, its type erased.
trait Member: Send {
    /// Runs in a transaction of its own and answers.
    fn run_alone(self: Box<Self>, conn: &mut DbConnection);
    /// Runs directly in the caller's transaction, keeping its result; false if it failed
    /// (its writes, if any, are still in the transaction).
    fn run_bare(&mut self, conn: &mut DbConnection) -> bool;
    /// Runs in a savepoint of the caller's transaction, keeping its result (a failure rolls
    /// back to the savepoint).
    fn run_in_savepoint(&mut self, conn: &mut DbConnection);
    /// Answers once the transaction ended: its own result, or the commit's error.
    fn settle(self: Box<Self>, commit_error: Option<&DbError>);
    /// Never ran: answers `err`.
    fn fail(self: Box<Self>, err: &DbError);
}

struct Pending<T, E, F> {
    work: F,
    /// What the latest run of `work` returned.
    result: Option<Result<T, E>>,
    answer: oneshot::Sender<Result<T, E>>,
    /// The caller's span: the member's statements belong to its trace.
    span: tracing::Span,
}

impl<T, E, F> Member for Pending<T, E, F>
where
    F: Fn(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + From<diesel::result::Error> + Send + 'static,
{
    fn run_alone(self: Box<Self>, conn: &mut DbConnection) {
        let _entered = self.span.enter();
        let result = diesel::Connection::transaction(conn, &self.work);
        let _ = self.answer.send(result);
    }

    fn run_bare(&mut self, conn: &mut DbConnection) -> bool {
        let _entered = self.span.enter();
        let result = (self.work)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn run_in_savepoint(&mut self, conn: &mut DbConnection) {
        let _entered = self.span.enter();
        // Inside a transaction, diesel's `transaction` is a savepoint.
        self.result = Some(diesel::Connection::transaction(conn, &self.work));
    }

    fn settle(self: Box<Self>, commit_error: Option<&DbError>) {
        let result = match (commit_error, self.result) {
            (None, Some(result)) => result,
            (Some(err), _) => Err(E::from(DbError::Unavailable(format!(
                "the commit failed: {err}"
            )))),
            (None, None) => Err(E::from(DbError::Task("the member never ran".into()))),
        };
        let _ = self.answer.send(result);
    }

    fn fail(self: Box<Self>, err: &DbError) {
        let _ = self
            .answer
            .send(Err(E::from(DbError::Unavailable(err.to_string()))));
    }
}

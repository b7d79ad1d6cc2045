//! Group commit: short transactions that arrive together share one database commit.
//!
//! Under load, the synchronous path's transactions (a reservation's intent and its
//! confirmation, a product lock) are each a few statements followed by a commit, and the
//! commit (a WAL flush, a round trip) is most of their cost; dozens are ready at the same
//! moment. A [`GroupCommit`] queues them; its worker takes every queued one (up to
//! [`MAX_GROUP`]), runs each in a savepoint of one transaction, commits once, then answers
//! each. What each member was promised still holds:
//!
//! * **All or nothing, each on its own.** A member that fails rolls back to its savepoint;
//!   the others go on.
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

    /// Runs `work` in a transaction of its own or in a savepoint of a shared one, and answers
    /// once its effect is committed (or with the error that undid it).
    pub async fn transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let member = Box::new(Pending {
            work,
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
    loop {
        let mut group = Vec::new();
        match waiting.recv().await {
            Some(first) => group.push(first),
            None => return, // every handle dropped
        }
        while group.len() < MAX_GROUP {
            match waiting.try_recv() {
                Ok(member) => group.push(member),
                Err(_) => break,
            }
        }
        metrics::counter!(catalog::DB_GROUP_COMMITS).increment(1);
        metrics::counter!(catalog::DB_GROUP_COMMIT_MEMBERS).increment(group.len() as u64);
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

/// Runs the members in savepoints of one transaction and answers each after the commit.
fn commit_group(conn: &mut DbConnection, group: Vec<Box<dyn Member>>) {
    if group.len() == 1 {
        // Alone: its own transaction, no savepoint.
        if let Some(member) = group.into_iter().next() {
            member.run_alone(conn);
        }
        return;
    }
    if let Err(err) =
        <DbConnection as diesel::Connection>::TransactionManager::begin_transaction(conn)
    {
        let err = DbError::Query(err);
        for member in group {
            member.fail(&err);
        }
        return;
    }
    let ran: Vec<Box<dyn Ran>> = group
        .into_iter()
        .map(|member| member.run_in(conn))
        .collect();
    let committed =
        <DbConnection as diesel::Connection>::TransactionManager::commit_transaction(conn)
            .map_err(DbError::Query);
    if committed.is_err() {
        let _ =
            <DbConnection as diesel::Connection>::TransactionManager::rollback_transaction(conn);
    }
    for member in ran {
        member.settle(committed.as_ref().err());
    }
}

/// A queued transaction, its type erased.
trait Member: Send {
    /// Runs in a transaction of its own and answers.
    fn run_alone(self: Box<Self>, conn: &mut DbConnection);
    /// Runs in a savepoint of the caller's transaction; answers once that commits.
    fn run_in(self: Box<Self>, conn: &mut DbConnection) -> Box<dyn Ran>;
    /// Never ran: answers `err`.
    fn fail(self: Box<Self>, err: &DbError);
}

/// A member that ran, waiting for the group's commit.
trait Ran: Send {
    /// The commit's outcome decides the answer: its own result, or the commit's error.
    fn settle(self: Box<Self>, commit_error: Option<&DbError>);
}

struct Pending<T, E, F> {
    work: F,
    answer: oneshot::Sender<Result<T, E>>,
    /// The caller's span: the member's statements belong to its trace.
    span: tracing::Span,
}

struct Done<T, E> {
    result: Result<T, E>,
    answer: oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Member for Pending<T, E, F>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + From<diesel::result::Error> + Send + 'static,
{
    fn run_alone(self: Box<Self>, conn: &mut DbConnection) {
        let _entered = self.span.enter();
        let result = diesel::Connection::transaction(conn, self.work);
        let _ = self.answer.send(result);
    }

    fn run_in(self: Box<Self>, conn: &mut DbConnection) -> Box<dyn Ran> {
        let _entered = self.span.enter();
        // Inside a transaction, diesel's `transaction` is a savepoint.
        let result = diesel::Connection::transaction(conn, self.work);
        Box::new(Done {
            result,
            answer: self.answer,
        })
    }

    fn fail(self: Box<Self>, err: &DbError) {
        let _ = self
            .answer
            .send(Err(E::from(DbError::Unavailable(err.to_string()))));
    }
}

impl<T, E> Ran for Done<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    fn settle(self: Box<Self>, commit_error: Option<&DbError>) {
        let result = match commit_error {
            None => self.result,
            Some(err) => Err(E::from(DbError::Unavailable(format!(
                "the commit failed: {err}"
            )))),
        };
        let _ = self.answer.send(result);
    }
}

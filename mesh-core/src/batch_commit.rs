//! Batch commit: a group commit whose members are data, so a group's writes can be a few
//! multi-row statements instead of a few statements per member.
//!
//! [`crate::group_commit`] shares a commit among closures, but each closure still runs its
//! own statements, one round trip each, and under load a round trip costs PostgreSQL's
//! backend about as much CPU as the statement itself. Where every member does the same thing
//! with different values (record an intent, take a product lock, confirm a reservation), a
//! [`Batch`] is handed the whole group's items at once and writes them together. What each
//! member was promised still holds:
//!
//! * **All or nothing, each on its own.** An item whose outcome is an error must leave no
//!   write behind: the batch is rolled back and run again without it (and without any other
//!   item that failed), so the items that succeed commit without it. A refusal whose writes
//!   are harmless (a row only touched) may instead be reported inside a successful output.
//!   If the batch as a whole fails (a database error), every item runs again alone, in its
//!   own transaction, so one item cannot sink the others.
//! * **Durable before answered.** Nobody hears "done" before the commit that made it so; a
//!   failed commit answers every item with the error, and none of them happened.
//! * **No added wait when idle.** An item that finds the worker idle runs at once, alone.
//!
//! One worker per batch kind, as with group commits: two kinds of one service never wait on
//! each other's row locks, and a kind's batches run one after the other.

use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, DbConnection, DbError};
use crate::group_commit::{begin, commit, next_group, rollback};

/// What a batch commit does with its items: the same write for each, done for all at once.
pub trait Batch: Send + Sync + 'static {
    /// One member's request.
    type Item: Send + 'static;
    /// What a member hears once its item is committed.
    type Output: Send + 'static;
    /// Why an item, or the whole batch, failed.
    type Error: From<DbError> + From<diesel::result::Error> + Send + 'static;

    /// Applies `items` inside the caller's transaction and returns one outcome per item, in
    /// their order. An `Err` outcome means the item's writes must not commit: the batch is
    /// rolled back and applied again without it, so `apply` must do nothing outside the
    /// transaction. An `Err` of the whole call rolls everything back; each item is then
    /// applied alone.
    fn apply(
        &self,
        conn: &mut DbConnection,
        items: &[Self::Item],
    ) -> Result<Outcomes<Self>, Self::Error>;

    /// Whether [`Batch::apply`] writes `items` with a single statement on `conn`. PostgreSQL
    /// runs a statement sent outside a transaction as a transaction of its own, committed
    /// before it answers, so such a batch is applied without `BEGIN` and `COMMIT`: two round
    /// trips fewer, a third of a small batch's. Its outcomes are answered as they come, so
    /// an `Err` outcome must then mean the item wrote nothing.
    fn one_statement(&self, _conn: &DbConnection, _items: &[Self::Item]) -> bool {
        false
    }
}

/// One outcome per item of a batch, in order.
pub type Outcomes<B> = Vec<Result<<B as Batch>::Output, <B as Batch>::Error>>;

/// A queue of items sharing statements and commits; cheap to clone.
pub struct BatchCommit<B: Batch> {
    queue: mpsc::Sender<Waiting<B>>,
}

impl<B: Batch> Clone for BatchCommit<B> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

/// Items waiting for the worker before callers wait to be queued.
const QUEUE: usize = 1024;

/// A queued item and who waits for its outcome.
struct Waiting<B: Batch> {
    item: B::Item,
    answer: oneshot::Sender<Result<B::Output, B::Error>>,
}

impl<B: Batch> BatchCommit<B> {
    /// A batch commit of `batch`'s items through `db`; its worker runs until every handle is
    /// dropped.
    pub fn new(db: Db, batch: B) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(work(db, batch, waiting));
        Self { queue }
    }

    /// Applies `item` together with whatever else is queued, and answers once its effect is
    /// committed (or with the error that undid it).
    pub async fn submit(&self, item: B::Item) -> Result<B::Output, B::Error> {
        let (answer, answered) = oneshot::channel();
        if self.queue.send(Waiting { item, answer }).await.is_err() {
            return Err(B::Error::from(DbError::Task(
                "the batch commit worker stopped".into(),
            )));
        }
        answered.await.unwrap_or_else(|_| {
            Err(B::Error::from(DbError::Task(
                "the batch commit was lost".into(),
            )))
        })
    }
}

/// Takes what is queued (waiting for the first), applies it as one batch, repeats.
async fn work<B: Batch>(db: Db, batch: B, mut queue: mpsc::Receiver<Waiting<B>>) {
    let batch = std::sync::Arc::new(batch);
    while let Some(group) = next_group(&mut queue).await {
        let batch = std::sync::Arc::clone(&batch);
        let ran = db
            .run(move |conn| -> Result<(), DbError> {
                commit_batch(conn, batch.as_ref(), group);
                Ok(())
            })
            .await;
        if let Err(err) = ran {
            // No connection: the items were dropped unanswered, and hear "lost".
            tracing::warn!(%err, "batch commit could not run");
        }
    }
}

/// Applies the group's items as one transaction, without those that fail, and answers each
/// after the commit.
fn commit_batch<B: Batch>(conn: &mut DbConnection, batch: &B, group: Vec<Waiting<B>>) {
    let (mut items, mut answers): (Vec<B::Item>, Vec<_>) = group
        .into_iter()
        .map(|waiting| (waiting.item, waiting.answer))
        .unzip();
    if batch.one_statement(conn, &items) {
        return apply_in_one_statement(conn, batch, items, answers);
    }
    // Each round either commits or drops at least one failed item, so this ends.
    while !items.is_empty() {
        if let Err(err) = begin(conn) {
            return answer_all::<B>(answers, || Err(B::Error::from(unavailable(&err))));
        }
        let outcomes = match batch.apply(conn, &items) {
            Ok(outcomes) if outcomes.len() == items.len() => outcomes,
            Ok(_) => {
                let _ = rollback(conn);
                return answer_all::<B>(answers, || {
                    Err(B::Error::from(DbError::Task(
                        "a batch answered for a different number of items".into(),
                    )))
                });
            }
            Err(err) => {
                let _ = rollback(conn);
                if answers.len() > 1 {
                    return apply_each_alone(conn, batch, items, answers);
                }
                if let Some(answer) = answers.pop() {
                    let _ = answer.send(Err(err));
                }
                return;
            }
        };
        if outcomes.iter().any(Result::is_err) {
            // The failed items may have written: undo everything, answer them, and run the
            // rest again without them.
            if let Err(err) = rollback(conn) {
                return answer_all::<B>(answers, || Err(B::Error::from(unavailable(&err))));
            }
            let mut kept_items = Vec::with_capacity(items.len());
            let mut kept_answers = Vec::with_capacity(items.len());
            for ((item, answer), outcome) in items.into_iter().zip(answers).zip(outcomes) {
                match outcome {
                    Err(err) => {
                        let _ = answer.send(Err(err));
                    }
                    Ok(_) => {
                        kept_items.push(item);
                        kept_answers.push(answer);
                    }
                }
            }
            items = kept_items;
            answers = kept_answers;
            continue;
        }
        return match commit(conn) {
            Ok(()) => {
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    let _ = answer.send(outcome);
                }
            }
            Err(err) => {
                let _ = rollback(conn);
                answer_all::<B>(answers, || {
                    Err(B::Error::from(DbError::Unavailable(format!(
                        "the commit failed: {err}"
                    ))))
                });
            }
        };
    }
}

/// A batch whose one statement is its own transaction: answered with what it returned. If
/// the statement failed, it wrote nothing, and every item runs again alone.
fn apply_in_one_statement<B: Batch>(
    conn: &mut DbConnection,
    batch: &B,
    items: Vec<B::Item>,
    mut answers: Vec<oneshot::Sender<Result<B::Output, B::Error>>>,
) {
    match batch.apply(conn, &items) {
        Ok(outcomes) if outcomes.len() == items.len() => {
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(outcome);
            }
        }
        Ok(_) => answer_all::<B>(answers, || {
            Err(B::Error::from(DbError::Task(
                "a batch answered for a different number of items".into(),
            )))
        }),
        Err(_) if answers.len() > 1 => apply_each_alone(conn, batch, items, answers),
        Err(err) => {
            if let Some(answer) = answers.pop() {
                let _ = answer.send(Err(err));
            }
        }
    }
}

/// After the whole batch failed: each item in a transaction of its own, answered with what
/// it alone did.
fn apply_each_alone<B: Batch>(
    conn: &mut DbConnection,
    batch: &B,
    items: Vec<B::Item>,
    answers: Vec<oneshot::Sender<Result<B::Output, B::Error>>>,
) {
    for (item, answer) in items.into_iter().zip(answers) {
        let alone = std::slice::from_ref(&item);
        let outcome = diesel::Connection::transaction(conn, |conn| {
            let mut outcomes = batch.apply(conn, alone)?;
            match (outcomes.pop(), outcomes.is_empty()) {
                (Some(outcome), true) => outcome,
                _ => Err(B::Error::from(DbError::Task(
                    "a batch answered for a different number of items".into(),
                ))),
            }
        });
        let _ = answer.send(outcome);
    }
}

fn answer_all<B: Batch>(
    answers: Vec<oneshot::Sender<Result<B::Output, B::Error>>>,
    outcome: impl Fn() -> Result<B::Output, B::Error>,
) {
    for answer in answers {
        let _ = answer.send(outcome());
    }
}

fn unavailable(err: &DbError) -> DbError {
    DbError::Unavailable(err.to_string())
}

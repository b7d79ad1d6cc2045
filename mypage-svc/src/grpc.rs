//! The tonic service: list and get entries, and watch a buyer's page live.

use std::pin::Pin;

use mesh_core::Db;
use mesh_core::auth::caller::page_owner;
use mesh_core::auth::grpc::caller;
use mesh_core::paging::PageRequest;
use reserve_proto::mypage::v1 as pb;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::domain::{Entry, Id, MyPageError};
use crate::events::EntryChanged;
use crate::store;
use crate::watchers::Watchers;

/// Entries buffered per watcher before it counts as slow.
const WATCH_BUFFER: usize = 64;

/// The `reserve.mypage.v1.MyPageService` implementation.
#[derive(Clone)]
pub struct MyPageApi {
    db: Db,
    changes: broadcast::Sender<EntryChanged>,
    watchers: Watchers,
}

impl MyPageApi {
    /// A service over `db`, watching `changes`, admitting live watchers through `watchers`.
    pub fn new(db: Db, changes: broadcast::Sender<EntryChanged>, watchers: Watchers) -> Self {
        Self {
            db,
            changes,
            watchers,
        }
    }
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::MyPageEntry, Status>> + Send>>;

#[tonic::async_trait]
impl pb::my_page_service_server::MyPageService for MyPageApi {
    async fn list_my_page(
        &self,
        request: Request<pb::ListMyPageRequest>,
    ) -> Result<Response<pb::ListMyPageResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let customer = page_owner(&caller, &request.customer_id)?;
        let scope = format!("mypage:{customer}");
        let page = PageRequest::parse(request.page_size, &request.page_token, &scope)?;
        let owner = customer.clone();
        let rows = self
            .db
            .run(move |conn| store::list(conn, &owner, page.after, page.probe_limit()))
            .await?;
        let (entries, next_page_token) =
            page.finish(rows, &scope, |entry| entry.reservation_id.get());
        Ok(Response::new(pb::ListMyPageResponse {
            entries: entries.into_iter().map(pb::MyPageEntry::from).collect(),
            next_page_token,
        }))
    }

    async fn get_my_page_entry(
        &self,
        request: Request<pb::GetMyPageEntryRequest>,
    ) -> Result<Response<pb::MyPageEntry>, Status> {
        let caller = caller(&request)?;
        let id = Id::parse(request.into_inner().reservation_id, "reservation id")?;
        let entry = self
            .db
            .run(move |conn| store::get(conn, id))
            .await?
            .ok_or(MyPageError::NotFound(id))?;
        caller.require_buyer_or_admin(&entry.customer_id, &format!("reservation {id}"))?;
        Ok(Response::new(entry.into()))
    }

    type WatchMyPageStream = EntryStream;

    /// Sends the buyer's current entries, then every entry as it changes. A watcher that falls
    /// behind is sent its whole page again rather than slowing anyone down; it ends as soon as
    /// its client goes away (not at its next send, which for a quiet buyer never comes).
    async fn watch_my_page(
        &self,
        request: Request<pb::WatchMyPageRequest>,
    ) -> Result<Response<EntryStream>, Status> {
        let caller = caller(&request)?;
        let requested = request.into_inner().customer_id;
        // None named: the caller's own page (an admin's too; everyone's would be unbounded).
        let customer = if requested.trim().is_empty() {
            caller.subject().to_owned()
        } else {
            page_owner(&caller, &requested)?
        };
        let permit = self.watchers.admit()?;
        let mut changes = self.changes.subscribe();
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        let db = self.db.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if send_page(&db, &customer, &sender).await.is_err() {
                return;
            }
            loop {
                let change = tokio::select! {
                    change = changes.recv() => change,
                    _ = sender.closed() => return, // the client went away
                };
                let sent = match change {
                    Ok(change) if change.customer_id == customer => {
                        send_entry(&db, change.reservation_id, &sender).await
                    }
                    Ok(_) => Ok(()),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "slow my-page watcher; resending its page");
                        send_page(&db, &customer, &sender).await
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if sent.is_err() {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

struct Gone;

async fn send_page(
    db: &Db,
    customer: &str,
    sender: &mpsc::Sender<Result<pb::MyPageEntry, Status>>,
) -> Result<(), Gone> {
    let customer = customer.to_owned();
    let entries = db
        .run(move |conn| store::list(conn, &customer, None, i64::MAX))
        .await;
    match entries {
        Ok(entries) => {
            for entry in entries {
                sender.send(Ok(entry.into())).await.map_err(|_| Gone)?;
            }
            Ok(())
        }
        Err(err) => {
            let _ = sender.send(Err(err.into())).await;
            Err(Gone)
        }
    }
}

async fn send_entry(
    db: &Db,
    reservation_id: Id,
    sender: &mpsc::Sender<Result<pb::MyPageEntry, Status>>,
) -> Result<(), Gone> {
    match db.run(move |conn| store::get(conn, reservation_id)).await {
        Ok(Some(entry)) => sender.send(Ok(entry.into())).await.map_err(|_| Gone),
        Ok(None) => Ok(()),
        Err(err) => {
            let _ = sender.send(Err(err.into())).await;
            Err(Gone)
        }
    }
}

impl From<MyPageError> for Status {
    fn from(err: MyPageError) -> Self {
        let message = err.to_string();
        match err {
            MyPageError::InvalidId(_) => Status::invalid_argument(message),
            MyPageError::NotFound(_) => Status::not_found(message),
        }
    }
}

/// The wire's entry: a half not seen yet is UNSPECIFIED, a missing id 0 (proto3's "unset").
impl From<Entry> for pb::MyPageEntry {
    fn from(entry: Entry) -> Self {
        let raw = |id: Option<Id>| id.map_or(0, Id::get);
        pb::MyPageEntry {
            reservation_id: entry.reservation_id.get(),
            product_id: raw(entry.product_id),
            product_name: entry.product_name,
            customer_id: entry.customer_id,
            reservation_status: entry.reservation_status.unwrap_or_default().into(),
            payment_id: raw(entry.payment_id),
            payment_status: entry.payment_status.unwrap_or_default().into(),
            updated_at_unix_ms: entry.updated_at_ms,
            reservation_version: entry.reservation_version,
            payment_version: entry.payment_version,
        }
    }
}

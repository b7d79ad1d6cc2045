//! The tonic service: the log of notifications.

use mesh_core::Db;
use mesh_core::auth::caller::page_owner;
use mesh_core::auth::grpc::caller;
use mesh_core::paging::PageRequest;
use reserve_proto::notice::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::{Notice, NoticeError};
use crate::store;

/// The `reserve.notice.v1.NoticeService` implementation.
#[derive(Clone)]
pub struct NoticeApi {
    db: Db,
}

impl NoticeApi {
    /// A service over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[tonic::async_trait]
impl pb::notice_service_server::NoticeService for NoticeApi {
    async fn list_notices(
        &self,
        request: Request<pb::ListNoticesRequest>,
    ) -> Result<Response<pb::ListNoticesResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let customer = page_owner(&caller, &request.customer_id)?;
        // Newest first: a page continues below the last id it showed.
        let scope = format!("notices:{customer}");
        let page = PageRequest::parse(request.page_size, &request.page_token, &scope)?;
        let rows = self
            .db
            .run(move |conn| store::list(conn, &customer, page.after, page.probe_limit()))
            .await?;
        let (notices, next_page_token) = page.finish(rows, &scope, |notice| notice.id.get());
        Ok(Response::new(pb::ListNoticesResponse {
            notices: notices.into_iter().map(pb::Notice::from).collect(),
            next_page_token,
        }))
    }
}

impl From<NoticeError> for Status {
    fn from(err: NoticeError) -> Self {
        Status::invalid_argument(err.to_string())
    }
}

impl From<Notice> for pb::Notice {
    fn from(notice: Notice) -> Self {
        pb::Notice {
            id: notice.id.get(),
            customer_id: notice.customer_id,
            event_type: notice.event_type,
            reservation_id: notice.reservation_id.get(),
            message: notice.message,
            created_at_unix_ms: notice.created_at_ms,
            delivery: notice.delivery.as_str().to_owned(),
            attempts: notice.attempts,
            last_error: notice.last_error.unwrap_or_default(),
            event_id: notice.event_id,
        }
    }
}

//! The tonic service: the log of notifications.

use mesh_core::Db;
use mesh_core::auth::caller::page_owner;
use mesh_core::auth::grpc::caller;
use reserve_proto::notice::v1 as pb;
use tonic::{Request, Response, Status};

use crate::store;

/// Most notifications listed at once (newest first).
const LIST_LIMIT: i64 = 500;

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
        let customer = page_owner(&caller, &request.into_inner().customer_id)?;
        let notices = self
            .db
            .run(move |conn| store::list(conn, &customer, LIST_LIMIT))
            .await
            .map_err(|err| err.into_status("notice"))?;
        Ok(Response::new(pb::ListNoticesResponse { notices }))
    }
}

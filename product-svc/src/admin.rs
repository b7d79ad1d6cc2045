//! `reserve.product.v1.ProductAdminService`: switches fault injection at run time. Served on
//! the internal listener only, and only to admins.

use std::time::Duration;

use mesh_core::auth::Role;
use mesh_core::auth::grpc::caller;
use reserve_proto::product::v1 as pb;
use tonic::{Request, Response, Status};

use crate::faults::{FaultSwitch, ReserveFaults};

/// The admin API over the shared fault switch.
#[derive(Clone)]
pub struct ProductAdmin {
    faults: FaultSwitch,
}

impl ProductAdmin {
    /// An admin API controlling `faults`.
    pub fn new(faults: FaultSwitch) -> Self {
        Self { faults }
    }
}

fn to_wire(faults: ReserveFaults) -> pb::ReserveFaults {
    pb::ReserveFaults {
        latency_min_ms: u32::try_from(faults.latency_min.as_millis()).unwrap_or(u32::MAX),
        latency_max_ms: u32::try_from(faults.latency_max.as_millis()).unwrap_or(u32::MAX),
        error_rate: faults.error_rate,
    }
}

#[tonic::async_trait]
impl pb::product_admin_service_server::ProductAdminService for ProductAdmin {
    async fn set_reserve_faults(
        &self,
        request: Request<pb::ReserveFaults>,
    ) -> Result<Response<pb::ReserveFaults>, Status> {
        caller(&request)?.require(Role::Admin, "switch fault injection")?;
        let wanted = request.into_inner();
        let faults = ReserveFaults::new(
            Duration::from_millis(u64::from(wanted.latency_min_ms)),
            Duration::from_millis(u64::from(wanted.latency_max_ms)),
            wanted.error_rate,
        )
        .map_err(Status::invalid_argument)?;
        self.faults.set(faults);
        Ok(Response::new(to_wire(faults)))
    }

    async fn get_reserve_faults(
        &self,
        request: Request<pb::GetReserveFaultsRequest>,
    ) -> Result<Response<pb::ReserveFaults>, Status> {
        caller(&request)?.require(Role::Admin, "read fault injection")?;
        Ok(Response::new(to_wire(self.faults.get())))
    }
}

//! Generated gRPC clients, servers and messages of Reserve Mesh.
//!
//! This crate is the only place generated code lives; services and the gateway depend on it
//! and convert between these wire types and their own domain types.

#![allow(clippy::all, missing_docs)]

/// Product catalogue API.
pub mod product {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("reserve.product.v1");
    }
}

/// Reservation API.
pub mod reservation {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("reserve.reservation.v1");
    }
}

/// Payment API.
pub mod payment {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("reserve.payment.v1");
    }
}

/// My page (CQRS read model) API.
pub mod mypage {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("reserve.mypage.v1");
    }
}

/// Notification API.
pub mod notice {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("reserve.notice.v1");
    }
}

/// Domain events carried over NATS JetStream.
pub mod events {
    /// Version 1.
    pub mod v1 {
        tonic::include_proto!("reserve.events.v1");
    }

    mod domain_event;
    mod status_change;
    pub use domain_event::{DomainEvent, Event};
    pub use status_change::{Moved, StatusChange};
}
mod status_name;
pub use status_name::StatusName;

/// Encoded `FileDescriptorSet` of every package above, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("reserve_descriptor");

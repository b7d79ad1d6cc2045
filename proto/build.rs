//! Compiles every .proto under `reserve/` with a vendored protoc, so no system protoc is needed,
//! and writes one file descriptor set that the services serve through gRPC reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "reserve/product/v1/product.proto",
    "reserve/reservation/v1/reservation.proto",
    "reserve/payment/v1/payment.proto",
    "reserve/mypage/v1/mypage.proto",
    "reserve/notice/v1/notice.proto",
    "reserve/events/v1/events.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: set before this build script starts a thread (prost-build spawns protoc as a
    // child process, it does not read our environment from another thread).
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("reserve_descriptor.bin"))
        .compile_protos(PROTOS, &["."])?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}

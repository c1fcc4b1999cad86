fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/rampart.proto");
    tonic_build::configure().compile_protos(&["proto/rampart.proto"], &["proto"])?;
    Ok(())
}

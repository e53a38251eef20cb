//! Sets the linker flags a Node-API addon needs (Node's symbols resolve at load time).
fn main() {
    napi_build::setup();
}

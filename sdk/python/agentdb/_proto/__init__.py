"""Generated protobuf and gRPC modules (gen_proto.sh); do not edit."""

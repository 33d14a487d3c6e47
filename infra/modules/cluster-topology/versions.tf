terraform {
  # OpenTofu 1.12 (tools/opentofu); `tofu test` needs no provider here.
  required_version = ">= 1.8.0"
}

variable "worker_count" {
  description = "Worker nodes beside the control plane. Two, so that anti-affinity and PodDisruptionBudgets behave as in the cloud."
  type        = number
  default     = 2

  validation {
    condition     = var.worker_count >= 1 && var.worker_count <= 5 && floor(var.worker_count) == var.worker_count
    error_message = "worker_count must be a whole number from 1 to 5 (a laptop has room for no more)."
  }
}

variable "gateway_ports" {
  description = "Host ports mapped to the ingress gateway's NodePorts on the control plane (HTTP and HTTPS)."
  type = list(object({
    host_port = number
    node_port = number
  }))
  default = [
    { host_port = 8080, node_port = 30080 },
    { host_port = 8443, node_port = 30443 },
  ]

  validation {
    condition     = length(distinct([for p in var.gateway_ports : p.host_port])) == length(var.gateway_ports)
    error_message = "Each gateway host_port may be mapped once."
  }

  validation {
    condition     = alltrue([for p in var.gateway_ports : p.node_port >= 30000 && p.node_port <= 32767])
    error_message = "node_port must be in Kubernetes' NodePort range, 30000-32767."
  }
}

variable "listen_address" {
  description = "Host address the port mappings listen on; loopback keeps the cluster off the network."
  type        = string
  default     = "127.0.0.1"
}

variable "registry" {
  description = "The local image registry container: its name on the kind network and its port on the laptop."
  type = object({
    name      = string
    host_port = number
  })
  default = {
    name      = "kind-registry"
    host_port = 5001
  }
}

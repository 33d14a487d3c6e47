variable "name" {
  description = "Name of the kind cluster (also the kubeconfig context, prefixed kind-)."
  type        = string
  default     = "demo-platform"
}

variable "node_image" {
  description = "kindest/node image, pinned by digest: it fixes the Kubernetes version of every node."
  type        = string
  default     = "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f"
}

variable "worker_count" {
  description = "Worker nodes beside the control plane."
  type        = number
  default     = 2
}

variable "gateway_ports" {
  description = "Host ports mapped to the ingress gateway's NodePorts (see modules/cluster-topology)."
  type = list(object({
    host_port = number
    node_port = number
  }))
  default = [
    { host_port = 8080, node_port = 30080 },
    { host_port = 8443, node_port = 30443 },
  ]
}

variable "kubeconfig_path" {
  description = "Where the cluster's kubeconfig is written; null means kind's default (~/.kube/config)."
  type        = string
  default     = null
}

variable "registry_name" {
  description = "Container name of the local registry on the kind network."
  type        = string
  default     = "kind-registry"
}

variable "registry_port" {
  description = "Port of the local registry on the laptop's loopback."
  type        = number
  default     = 5001
}

variable "registry_image" {
  description = "The registry image (CNCF distribution), pinned by tag."
  type        = string
  default     = "registry:3.0.0"
}

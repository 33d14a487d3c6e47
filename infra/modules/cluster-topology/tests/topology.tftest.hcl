# `tofu test` of the topology: plain data in, plain data out, no provider.

run "defaults_give_one_control_plane_and_two_workers" {
  command = plan

  assert {
    condition     = length(output.nodes) == 3 && output.nodes[0].role == "control-plane"
    error_message = "expected a control plane followed by two workers"
  }

  assert {
    condition     = length([for n in output.nodes : n if n.role == "worker"]) == 2
    error_message = "expected two workers by default"
  }

  assert {
    condition     = [for m in output.nodes[0].port_mappings : m.container_port] == [30080, 30443]
    error_message = "the gateway NodePorts must be mapped on the control plane"
  }

  assert {
    condition     = output.gateway_urls.http == "http://127.0.0.1:8080"
    error_message = "the HTTP gateway URL must use the mapped host port"
  }

  assert {
    condition     = strcontains(output.containerd_config_patches[0], "\"localhost:5001\"") && strcontains(output.containerd_config_patches[0], "http://kind-registry:5000")
    error_message = "containerd must resolve localhost:5001 through the registry container"
  }
}

run "a_host_port_mapped_twice_is_refused" {
  command = plan

  variables {
    gateway_ports = [
      { host_port = 8080, node_port = 30080 },
      { host_port = 8080, node_port = 30443 },
    ]
  }

  expect_failures = [var.gateway_ports]
}

run "a_port_outside_the_nodeport_range_is_refused" {
  command = plan

  variables {
    gateway_ports = [{ host_port = 80, node_port = 80 }]
  }

  expect_failures = [var.gateway_ports]
}

run "zero_workers_is_refused" {
  command = plan

  variables {
    worker_count = 0
  }

  expect_failures = [var.worker_count]
}

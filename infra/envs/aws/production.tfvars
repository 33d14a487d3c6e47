environment         = "production"
vpc_cidr            = "10.50.0.0/16"
node_instance_types = ["m7i.xlarge"]
api_allowed_cidrs   = ["203.0.113.0/24"]
repository_url      = "ssh://git@github.com/example/demo-platform.git"

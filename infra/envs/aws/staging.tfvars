environment       = "staging"
api_allowed_cidrs = ["203.0.113.0/24"]
repository_url    = "ssh://git@github.com/example/demo-platform.git"

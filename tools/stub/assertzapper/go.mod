module drjosh.dev/assertzapper

go 1.22

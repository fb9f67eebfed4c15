// Package composetest checks the files that run Sluice in containers —
// docker-compose.yml, the Dockerfile, .dockerignore, the LocalStack ready
// hook and the Prometheus scrape configuration — without Docker, which
// cannot run on our machines. It loads the compose file with compose-go the
// way `docker compose` does, reads the Dockerfile as text, runs the ready
// hook against a stand-in for awslocal, and holds every name, port, timeout
// and key schema in them to what the Go code (pkg/service, pkg/provision,
// pkg/dynamodb) says. The package has only tests.
package composetest

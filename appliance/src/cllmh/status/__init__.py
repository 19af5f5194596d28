"""The site's status page (`cllmh status`): one login for the appliance, live view, events, logs,
health, a JSON API, Prometheus metrics and nginx's `auth_request` check for HLS."""

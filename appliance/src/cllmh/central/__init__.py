"""Head office's central API: sites report heartbeats and events here (contract in README.md);
the dashboard and scripts read sites, cameras, events and alerts. See README.md in this folder."""

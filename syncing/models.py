# Sync runs and stored records arrive with the syncing issue (#8).

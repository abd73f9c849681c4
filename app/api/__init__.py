"""HTTP only: request models, routes and error mapping. No SQL, no Redis here."""

-- One server, two databases: Dagster's own storage, and the application database holding the mirror.
CREATE DATABASE dagster;
CREATE DATABASE app;

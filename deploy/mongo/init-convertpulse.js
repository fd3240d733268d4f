// Run once by the mongo image on an empty data directory (docker-entrypoint-initdb.d), as the
// root user it just created: the application user, allowed the convertpulse database only.
db.getSiblingDB("convertpulse").createUser({
  user: "convertpulse",
  pwd: process.env.CP_MONGO_APP_PASSWORD,
  roles: [{ role: "readWrite", db: "convertpulse" }],
});

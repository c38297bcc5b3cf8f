/*
 * issue.c: the lessor C API end to end against PostgreSQL.
 *
 * Build: cc -Wall -Wextra -Wpedantic -Werror -std=c11 -I include ffi/examples/issue.c \
 *          -L target/debug -llessor -lpthread -o issue
 * Environment:
 *   LESSOR_DATA_DIR      a directory for the engine that does not hold one yet (default: a new
 *                        /tmp/lessor-example-XXXXXX each run, printed as "DATA_DIR <path>")
 *   LESSOR_PG_URL        connection URL template, postgresql://{{username}}:{{password}}@host:port/db
 *   LESSOR_PG_USER       the connection's admin user
 *   LESSOR_PG_PASSWORD   its password
 *   LESSOR_PREFIX        prefix of issued usernames (default "issue")
 *   LESSOR_THREADS       threads issuing concurrently through one handle (default 8)
 *
 * Steps: init, open, enable database/, write config and role, issue; print
 * "ISSUED <username>" and wait for a line on stdin (so a test can look at the
 * database); renew, revoke, print "REVOKED <username>" and wait again; then
 * issue from LESSOR_THREADS threads at once and revoke all; print "DONE".
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lessor.h"

static lessor_engine *engine;
static char root_token[256];

static void die(const char *what, lessor_status status, lessor_error *err) {
  fprintf(stderr, "%s failed: %s (%u): %s\n", what, lessor_status_str(status), (unsigned)status,
          err ? lessor_error_message(err) : "(no details)");
  lessor_error_free(err);
  exit(1);
}

static const char *env(const char *name, const char *fallback) {
  const char *value = getenv(name);
  if (value == NULL && fallback == NULL) {
    fprintf(stderr, "set %s\n", name);
    exit(2);
  }
  return value ? value : fallback;
}

/* Appends `s` to `out` as a JSON string literal. */
static void json_string(char *out, size_t size, const char *s) {
  size_t n = strlen(out);
  if (n + 2 >= size) exit(3);
  out[n++] = '"';
  for (; *s; s++) {
    if (n + 8 >= size) exit(3);
    if (*s == '"' || *s == '\\') {
      out[n++] = '\\';
      out[n++] = *s;
    } else if ((unsigned char)*s < 0x20) {
      n += (size_t)snprintf(out + n, size - n, "\\u%04x", (unsigned)*s);
    } else {
      out[n++] = *s;
    }
  }
  out[n++] = '"';
  out[n] = '\0';
}

static void request(const char *operation, const char *path, const char *data) {
  char *response = NULL;
  lessor_error *err = NULL;
  lessor_status status = lessor_request(engine, root_token, operation, path, data, &response, &err);
  if (status != LESSOR_OK) die(path, status, err);
  lessor_string_free(response);
}

static void wait_for_line(void) {
  char line[16];
  fflush(stdout);
  if (fgets(line, sizeof line, stdin) == NULL) { /* EOF: go on */
  }
}

static void *issue_and_revoke(void *arg) {
  lessor_credential *credential = NULL;
  lessor_error *err = NULL;
  lessor_status status = lessor_issue(engine, root_token, "database/creds/app", &credential, &err);
  (void)arg;
  if (status != LESSOR_OK) die("threaded issue", status, err);
  status = lessor_revoke(engine, root_token, lessor_credential_lease_id(credential), &err);
  if (status != LESSOR_OK) die("threaded revoke", status, err);
  lessor_credential_free(credential);
  return NULL;
}

int main(void) {
  /* Each run gets a directory of its own unless one is named: a second run
   * on the same one would find it initialized (LESSOR_ALREADY_INITIALIZED),
   * and its root token is printed only once, by the first. */
  char fresh[] = "/tmp/lessor-example-XXXXXX";
  const char *data_dir = getenv("LESSOR_DATA_DIR");
  if (data_dir == NULL) {
    data_dir = mkdtemp(fresh);
    if (data_dir == NULL) {
      perror("mkdtemp /tmp/lessor-example-XXXXXX");
      exit(2);
    }
    printf("DATA_DIR %s\n", data_dir);
  }
  const char *url = env("LESSOR_PG_URL", NULL);
  const char *user = env("LESSOR_PG_USER", NULL);
  const char *password = env("LESSOR_PG_PASSWORD", NULL);
  const char *prefix = env("LESSOR_PREFIX", "issue");
  int threads = atoi(env("LESSOR_THREADS", "8"));
  lessor_error *err = NULL;
  lessor_status status;
  char *token = NULL;
  char config[4096] = "";
  char template[256];
  pthread_t ids[64];
  int i;

  printf("liblessor %s (header %d.%d.%d)\n", lessor_version(), LESSOR_VERSION_MAJOR,
         LESSOR_VERSION_MINOR, LESSOR_VERSION_PATCH);

  status = lessor_init(data_dir, NULL, &token, &err);
  if (status != LESSOR_OK) die("lessor_init", status, err);
  snprintf(root_token, sizeof root_token, "%s", token);
  lessor_string_free(token);

  status = lessor_engine_open(data_dir, NULL, &engine, &err);
  if (status != LESSOR_OK) die("lessor_engine_open", status, err);

  /* Error paths: a bad token and a NULL argument. */
  {
    lessor_credential *credential = NULL;
    status = lessor_issue(engine, "not-a-token", "database/creds/app", &credential, &err);
    if (status != LESSOR_PERMISSION_DENIED || credential != NULL) die("bad-token check", status, err);
    printf("bad token: %s: %s\n", lessor_status_str(status), lessor_error_message(err));
    lessor_error_free(err);
    err = NULL;
    status = lessor_issue(engine, NULL, "database/creds/app", &credential, NULL);
    if (status != LESSOR_NULL_PARAMETER) die("NULL check", status, NULL);
  }

  request("update", "sys/mounts/database", "{\"type\":\"database\"}");
  strcat(config, "{\"plugin_name\":\"postgresql-database-plugin\",\"allowed_roles\":\"*\",\"connection_url\":");
  json_string(config, sizeof config, url);
  strcat(config, ",\"username\":");
  json_string(config, sizeof config, user);
  strcat(config, ",\"password\":");
  json_string(config, sizeof config, password);
  strcat(config, ",\"username_template\":");
  snprintf(template, sizeof template, "%s-{{random 16}}", prefix);
  json_string(config, sizeof config, template);
  strcat(config, "}");
  request("update", "database/config/pg", config);
  request("update", "database/roles/app",
          "{\"db_name\":\"pg\",\"default_ttl\":\"1h\",\"max_ttl\":\"24h\",\"creation_statements\":"
          "\"CREATE ROLE \\\"{{name}}\\\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL "
          "'{{expiration}}';\"}");

  {
    lessor_credential *credential = NULL;
    int64_t ttl = 0;
    status = lessor_issue(engine, root_token, "database/creds/app", &credential, &err);
    if (status != LESSOR_OK) die("lessor_issue", status, err);
    printf("ISSUED %s ttl=%lld\n", lessor_credential_username(credential),
           (long long)lessor_credential_ttl_s(credential));
    if (strlen(lessor_credential_password(credential)) == 0) die("empty password", LESSOR_OK, NULL);
    wait_for_line();

    status = lessor_renew(engine, root_token, lessor_credential_lease_id(credential), 600, &ttl, &err);
    if (status != LESSOR_OK) die("lessor_renew", status, err);
    printf("RENEWED ttl=%lld\n", (long long)ttl);

    status = lessor_revoke(engine, root_token, lessor_credential_lease_id(credential), &err);
    if (status != LESSOR_OK) die("lessor_revoke", status, err);
    printf("REVOKED %s\n", lessor_credential_username(credential));
    lessor_credential_free(credential);
    wait_for_line();
  }

  if (threads < 0 || threads > 64) threads = 64;
  for (i = 0; i < threads; i++) {
    if (pthread_create(&ids[i], NULL, issue_and_revoke, NULL) != 0) die("pthread_create", LESSOR_OK, NULL);
  }
  for (i = 0; i < threads; i++) pthread_join(ids[i], NULL);
  printf("THREADS %d\n", threads);

  lessor_engine_free(engine);
  printf("DONE\n");
  return 0;
}

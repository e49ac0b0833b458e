-- accord's PostgreSQL schema, version 1.
--
-- Applied by accord.backends.postgres under an advisory lock; @s@ is the
-- quoted schema name, @channel@ the NOTIFY channel as an SQL literal.
-- Everything is qualified with the schema, so no search_path is involved.
-- Statements are separated by lines holding only a comment of two semicolons.

CREATE TABLE IF NOT EXISTS @s@.accord_meta (
    name  text PRIMARY KEY,
    value text NOT NULL
)
-- ;;
-- The store revision. Every writer locks this one row first and keeps the
-- lock until COMMIT, so writers commit one at a time, in revision order.
CREATE TABLE IF NOT EXISTS @s@.accord_counter (
    id     integer PRIMARY KEY CHECK (id = 1),
    rev    bigint NOT NULL,
    purged bigint NOT NULL
) WITH (fillfactor = 10)
-- ;;
INSERT INTO @s@.accord_counter (id, rev, purged) VALUES (1, 0, 0) ON CONFLICT DO NOTHING
-- ;;
-- Upgrading a store in use: every writer locks the counter row first, so
-- holding this lock to COMMIT lets the writers in flight finish and keeps
-- new ones waiting, and the ALTER TABLEs below never deadlock with a writer
-- that holds one table and waits for another. Readers are not blocked.
LOCK TABLE @s@.accord_counter IN EXCLUSIVE MODE
-- ;;
-- Keys compare byte-wise (COLLATE "C"): on UTF-8 that is code point order,
-- the order Python and the other backends sort keys in.
CREATE TABLE IF NOT EXISTS @s@.accord_records (
    key      text COLLATE "C" PRIMARY KEY,
    kind     text NOT NULL,
    data     bytea NOT NULL,
    version  bigint NOT NULL,
    revision bigint NOT NULL,
    author   text NOT NULL,
    lamport  bigint NOT NULL,
    clock    text NOT NULL,
    deleted  boolean NOT NULL,
    expires  double precision
) WITH (fillfactor = 80)
-- ;;
-- History. body is the event as the session built it; rev, time (from ts),
-- version, prev, hash and expires are added when it is read, exactly as
-- plan_ops adds them. change marks the events of ops that changed their key
-- (Backend.changes walks them back through the (key, rev) index).
CREATE TABLE IF NOT EXISTS @s@.accord_events (
    rev     bigint PRIMARY KEY,
    key     text COLLATE "C",
    ts      double precision NOT NULL,
    version bigint,
    prev    bigint,
    hash    text,
    expires double precision,
    change  boolean NOT NULL DEFAULT false,
    body    text NOT NULL,
    token   uuid
)
-- ;;
-- token: the transaction token of an event appended by accord_put_if, which
-- keeps it there instead of in accord_tokens (one row less per write).
ALTER TABLE @s@.accord_events ADD COLUMN IF NOT EXISTS token uuid
-- ;;
CREATE INDEX IF NOT EXISTS accord_events_key ON @s@.accord_events (key, rev)
-- ;;
-- One row per committed write transaction, keyed by a token the client made
-- up before sending it. A client that lost its connection during COMMIT
-- sends the same transaction again with the same token; the function then
-- finds the row and reports the first outcome instead of applying it twice.
CREATE TABLE IF NOT EXISTS @s@.accord_tokens (
    token  uuid PRIMARY KEY,
    ts     double precision NOT NULL,
    ok     boolean NOT NULL,
    rev0   bigint NOT NULL,
    rev1   bigint NOT NULL,
    before text NOT NULL
)
-- ;;
-- failed: the position (from 1) of the compare that refused the transaction.
ALTER TABLE @s@.accord_tokens ADD COLUMN IF NOT EXISTS failed integer
-- ;;
-- The backends listening for this store's NOTIFY (one per store object
-- that has waited). Writers notify only while this table has a row.
CREATE TABLE IF NOT EXISTS @s@.accord_listeners (
    pid   integer PRIMARY KEY,
    since double precision NOT NULL
)
-- ;;
CREATE OR REPLACE FUNCTION @s@.accord_value_cmp(
    present boolean, a_kind text, a_data bytea, op text, e_json jsonb, e_bytes bytea
) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $fn$
-- The "value" compare, with Python's semantics for the cases that have one:
-- == and != on any values, < <= > >= on two numbers, two strings or two
-- byte strings. Anything else is a type error in Python, and here too.
DECLARE
    a jsonb;
    eq boolean;
    a_type text;
    e_type text;
BEGIN
    IF (present AND a_kind = 'bytes') OR e_bytes IS NOT NULL THEN
        IF op IN ('==', '!=') THEN
            eq := present AND a_kind = 'bytes' AND e_bytes IS NOT NULL AND a_data = e_bytes;
            RETURN CASE WHEN op = '==' THEN eq ELSE NOT eq END;
        END IF;
        IF present AND a_kind = 'bytes' AND e_bytes IS NOT NULL THEN
            RETURN CASE op WHEN '<' THEN a_data < e_bytes WHEN '<=' THEN a_data <= e_bytes
                           WHEN '>' THEN a_data > e_bytes ELSE a_data >= e_bytes END;
        END IF;
        RAISE EXCEPTION 'a value compare with % between bytes and another type', op
            USING ERRCODE = 'AC001';
    END IF;
    IF NOT present THEN
        a := 'null'::jsonb;
    ELSIF a_kind = 'text' THEN
        a := to_jsonb(convert_from(a_data, 'UTF8'));
    ELSE
        a := convert_from(a_data, 'UTF8')::jsonb;
    END IF;
    a_type := jsonb_typeof(a);
    e_type := jsonb_typeof(e_json);
    IF op IN ('==', '!=') THEN
        IF a_type = 'boolean' AND e_type = 'number' THEN
            eq := (CASE WHEN a = 'true' THEN 1 ELSE 0 END) = (e_json #>> '{}')::numeric;
        ELSIF a_type = 'number' AND e_type = 'boolean' THEN
            eq := (CASE WHEN e_json = 'true' THEN 1 ELSE 0 END) = (a #>> '{}')::numeric;
        ELSE
            eq := a = e_json;
        END IF;
        RETURN CASE WHEN op = '==' THEN eq ELSE NOT eq END;
    END IF;
    IF a_type = 'number' AND e_type = 'number' THEN
        RETURN CASE op
            WHEN '<' THEN (a #>> '{}')::numeric < (e_json #>> '{}')::numeric
            WHEN '<=' THEN (a #>> '{}')::numeric <= (e_json #>> '{}')::numeric
            WHEN '>' THEN (a #>> '{}')::numeric > (e_json #>> '{}')::numeric
            ELSE (a #>> '{}')::numeric >= (e_json #>> '{}')::numeric END;
    END IF;
    IF a_type = 'string' AND e_type = 'string' THEN
        RETURN CASE op
            WHEN '<' THEN (a #>> '{}') COLLATE "C" < (e_json #>> '{}') COLLATE "C"
            WHEN '<=' THEN (a #>> '{}') COLLATE "C" <= (e_json #>> '{}') COLLATE "C"
            WHEN '>' THEN (a #>> '{}') COLLATE "C" > (e_json #>> '{}') COLLATE "C"
            ELSE (a #>> '{}') COLLATE "C" >= (e_json #>> '{}') COLLATE "C" END;
    END IF;
    RAISE EXCEPTION 'a value compare with % between % and %', op, a_type, e_type
        USING ERRCODE = 'AC001';
END
$fn$
-- ;;
-- The functions below changed what they return (h_failed) and take; an
-- existing store's old ones go first (CREATE OR REPLACE cannot change that).
DROP FUNCTION IF EXISTS @s@.accord_txn(uuid, text, bytea[])
-- ;;
DROP FUNCTION IF EXISTS @s@.accord_put_if(uuid, boolean, text, bigint, text, bytea, text, bigint,
    text, text, text, text, text, text[], text[], double precision)
-- ;;
DROP FUNCTION IF EXISTS @s@.accord_vacant(text, text, double precision)
-- ;;
CREATE OR REPLACE FUNCTION @s@.accord_txn(
    p_token uuid,
    p_spec  text,
    p_data  bytea[]
) RETURNS TABLE (
    r_key text, r_kind text, r_data bytea, r_version bigint, r_revision bigint,
    r_author text, r_lamport bigint, r_clock text, r_deleted boolean,
    r_expires double precision,
    h_ok boolean, h_rev0 bigint, h_rev1 bigint, h_now double precision,
    h_replay boolean, h_before text, h_failed integer
)
-- VOLATILE (the default) matters: at Read Committed every statement below
-- takes a fresh snapshot, so once the counter lock is granted the reads see
-- everything the previous lock holder committed.
LANGUAGE plpgsql AS $fn$
-- The one atomic primitive (Backend.txn) in one round trip: lock, check
-- every compare on the database clock, apply one branch, append history,
-- move the revision, notify waiters. Mirrors accord.backends.base:
-- check_compare and plan_ops; the client replays plan_ops on the returned
-- "before" rows to build its result, and checks that the revisions agree.
--
-- p_spec is JSON {"c": compares, "o": ops}, each a list of arrays (see
-- _txn_spec in postgres.py); byte strings travel in p_data, by index, so
-- values are never escaped into text.
DECLARE
    v_spec jsonb := p_spec::jsonb;
    c_key text[]; c_target text[]; c_op text[]; c_num double precision[];
    c_text text[]; c_json jsonb[]; c_bytes bytea[]; c_now boolean[]; c_refusal text[];
    o_branch boolean[]; o_type text[]; o_key text[]; o_kind text[]; o_data bytea[];
    o_author text[]; o_lamport bigint[]; o_clock text[]; o_ttl double precision[];
    o_event text[]; o_evkey text[]; o_hash text[];
    v_has_ops boolean;
    v_ok boolean := true;
    v_failed integer;
    v_outcome text;
    v_rev0 bigint;
    v_rev bigint;
    v_now double precision;
    v_keys text[];
    v_written text[];
    v_changed text[] := '{}';
    v_purged boolean := false;
    v_before text;
    v_payload text;
    rec @s@.accord_records%ROWTYPE;
    v_found boolean;
    v_actual double precision;
    v_expected double precision;
    v_pass boolean;
    v_base bigint;
    v_del boolean;
    tok @s@.accord_tokens%ROWTYPE;
    i integer;
BEGIN
    -- One sort per list (by ordinality) feeding every aggregate, rather
    -- than one sort per aggregate: this runs on every write.
    SELECT array_agg(e->>0), array_agg(e->>1), array_agg(e->>2),
           array_agg((e->>3)::double precision), array_agg(e->>4), array_agg(e->5),
           array_agg(p_data[(e->>7)::integer]), array_agg((e->>6)::boolean),
           array_agg(e->>8)
      INTO c_key, c_target, c_op, c_num, c_text, c_json, c_bytes, c_now, c_refusal
      FROM (SELECT e FROM jsonb_array_elements(v_spec->'c') WITH ORDINALITY AS t(e, n)
            ORDER BY n) AS c;
    SELECT array_agg((e->>0)::boolean), array_agg(e->>1), array_agg(e->>2), array_agg(e->>3),
           array_agg(coalesce(p_data[(e->>4)::integer], ''::bytea)), array_agg(e->>5),
           array_agg((e->>6)::bigint), array_agg(e->>7), array_agg((e->>8)::double precision),
           array_agg(e->>9), array_agg(e->>10), array_agg(e->>11)
      INTO o_branch, o_type, o_key, o_kind, o_data, o_author, o_lamport, o_clock, o_ttl,
           o_event, o_evkey, o_hash
      FROM (SELECT e FROM jsonb_array_elements(v_spec->'o') WITH ORDINALITY AS t(e, n)
            ORDER BY n) AS o;
    v_has_ops := coalesce(array_length(o_type, 1), 0) > 0;
    -- A vacant compare names a prefix, not a key: it is not a touched key.
    v_keys := ARRAY(
        SELECT DISTINCT u.k FROM (
            SELECT c.k FROM unnest(coalesce(c_key, '{}'), coalesce(c_target, '{}')) AS c(k, t)
                WHERE c.t <> 'vacant'
            UNION ALL SELECT o.k FROM unnest(coalesce(o_key, '{}')) AS o(k)) AS u
        WHERE u.k IS NOT NULL ORDER BY u.k);
    IF v_has_ops THEN
        -- Every writer takes this row lock first and holds it to COMMIT:
        -- writers commit one at a time, so revision N+1 can never become
        -- visible before revision N, and no two writers can interleave a
        -- check and a write.
        SELECT c.rev INTO v_rev0 FROM @s@.accord_counter c WHERE c.id = 1 FOR UPDATE;
        IF p_token IS NOT NULL THEN
            -- Under the counter lock, a first attempt with this token has
            -- either committed (its row is visible) or never will.
            SELECT * INTO tok FROM @s@.accord_tokens t WHERE t.token = p_token;
            IF FOUND THEN
                RETURN QUERY SELECT NULL::text, NULL::text, NULL::bytea, NULL::bigint,
                    NULL::bigint, NULL::text, NULL::bigint, NULL::text, NULL::boolean,
                    NULL::double precision, tok.ok, tok.rev0, tok.rev1, tok.ts, true, tok.before,
                    tok.failed;
                RETURN;
            END IF;
        END IF;
        -- The row locks on the touched keys (in key order) guard against
        -- writers that bypass this function, such as an administrator's SQL.
        PERFORM 1 FROM @s@.accord_records r WHERE r.key = ANY (v_keys) ORDER BY r.key FOR UPDATE;
    END IF;
    -- The database clock, read after the locks: a lease deadline is
    -- checked at the moment of the write, not when the transaction began.
    v_now := extract(epoch FROM clock_timestamp())::double precision;

    FOR i IN 1 .. coalesce(array_length(c_key, 1), 0) LOOP
        IF c_target[i] = 'vacant' THEN
            -- base.check_compare, target "vacant": no live, unexpired row
            -- named the prefix and digits only, other than the exempt key.
            -- The slots lie in [prefix || '0', prefix || ':'), so an empty
            -- range (the usual case) costs one probe of the primary key.
            -- Written out here, not in a function of its own: plpgsql keeps
            -- this statement's plan, a called SQL function is planned anew.
            v_pass := NOT EXISTS (
                SELECT 1 FROM @s@.accord_records r
                WHERE r.key >= (c_key[i] || '0') COLLATE "C"
                  AND r.key < (c_key[i] || ':') COLLATE "C"
                  AND NOT r.deleted AND (r.expires IS NULL OR r.expires > v_now)
                  AND r.key IS DISTINCT FROM c_text[i]
                  AND substr(r.key, char_length(c_key[i]) + 1) ~ '^[0-9]+$');
            IF NOT v_pass THEN
                v_ok := false;
                v_failed := i;
                v_outcome := c_refusal[i];
                EXIT;
            END IF;
            CONTINUE;
        END IF;
        SELECT * INTO rec FROM @s@.accord_records r WHERE r.key = c_key[i];
        v_found := FOUND AND NOT rec.deleted;
        IF c_target[i] = 'holder' THEN
            v_pass := NOT v_found
                OR (rec.expires IS NOT NULL AND rec.expires <= v_now)
                OR (rec.author = c_text[i]) IS TRUE;
        ELSIF c_target[i] = 'value' THEN
            v_pass := @s@.accord_value_cmp(
                v_found, rec.kind, rec.data, c_op[i],
                CASE WHEN c_now[i] THEN to_jsonb(v_now) ELSE c_json[i] END,
                CASE WHEN c_now[i] THEN NULL ELSE c_bytes[i] END);
        ELSE
            IF c_target[i] = 'version' THEN
                v_actual := CASE WHEN v_found THEN rec.version ELSE 0 END;
                v_expected := CASE WHEN c_now[i] THEN v_now ELSE c_num[i] END;
            ELSE -- expires: no deadline is +infinity, an absent key -infinity
                v_actual := CASE WHEN NOT v_found THEN '-infinity'::double precision
                                 ELSE coalesce(rec.expires, 'infinity'::double precision) END;
                v_expected := CASE WHEN c_now[i] THEN v_now
                                   ELSE coalesce(c_num[i], 'infinity'::double precision) END;
            END IF;
            v_pass := CASE c_op[i]
                WHEN '==' THEN v_actual IS NOT DISTINCT FROM v_expected
                WHEN '!=' THEN v_actual IS DISTINCT FROM v_expected
                WHEN '<' THEN v_actual < v_expected
                WHEN '<=' THEN v_actual <= v_expected
                WHEN '>' THEN v_actual > v_expected
                WHEN '>=' THEN v_actual >= v_expected
            END;
        END IF;
        IF v_pass IS NOT TRUE THEN
            v_ok := false;
            v_failed := i;
            v_outcome := c_refusal[i];
            EXIT;
        END IF;
    END LOOP;
    IF v_outcome IS NOT NULL THEN
        -- The refused transaction's events say what refused it (base.plan_ops
        -- does the same with the compare's refusal).
        FOR i IN 1 .. coalesce(array_length(o_type, 1), 0) LOOP
            IF NOT o_branch[i] AND o_event[i] IS NOT NULL THEN
                o_event[i] := jsonb_set(o_event[i]::jsonb, '{outcome}', to_jsonb(v_outcome))::text;
            END IF;
        END LOOP;
    END IF;

    IF NOT v_has_ops THEN
        SELECT c.rev INTO v_rev0 FROM @s@.accord_counter c WHERE c.id = 1;
    ELSIF NOT v_ok AND NOT EXISTS (
            SELECT 1 FROM generate_subscripts(o_type, 1) AS j
            WHERE NOT o_branch[j] AND o_type[j] <> 'a') THEN
        -- A refused write only appends its history event. Committing it
        -- without waiting for the WAL flush lets the counter lock go at once,
        -- so losers of a hot key do not queue behind each other's fsync. A
        -- server crash can drop only such trailing events, never an applied
        -- write: a later synchronous commit flushes everything before it.
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    v_written := ARRAY(
        SELECT o_key[j] FROM generate_subscripts(o_type, 1) AS j
        WHERE o_branch[j] = v_ok AND o_type[j] <> 'a');
    -- The rows before the ops run; values the client sent itself are left out.
    RETURN QUERY SELECT r.key::text, r.kind,
        CASE WHEN r.key = ANY (v_written) THEN NULL ELSE r.data END,
        r.version, r.revision, r.author, r.lamport, r.clock, r.deleted, r.expires,
        NULL::boolean, NULL::bigint, NULL::bigint, NULL::double precision, NULL::boolean,
        NULL::text, NULL::integer
        FROM @s@.accord_records r WHERE r.key = ANY (v_keys);
    IF v_has_ops AND p_token IS NOT NULL THEN
        SELECT coalesce(json_agg(json_build_array(r.key, r.kind, r.version, r.revision,
            r.author, r.lamport, r.clock, r.deleted, r.expires))::text, '[]')
            INTO v_before FROM @s@.accord_records r WHERE r.key = ANY (v_written);
    END IF;

    v_rev := v_rev0;
    FOR i IN 1 .. coalesce(array_length(o_type, 1), 0) LOOP
        CONTINUE WHEN o_branch[i] IS DISTINCT FROM v_ok;
        -- Every op consumes one revision, as plan_ops counts them.
        v_rev := v_rev + 1;
        IF o_type[i] = 'a' THEN
            INSERT INTO @s@.accord_events (rev, key, ts, body)
                VALUES (v_rev, o_evkey[i], v_now, o_event[i]);
            CONTINUE;
        END IF;
        SELECT r.version, r.deleted INTO v_base, v_del
            FROM @s@.accord_records r WHERE r.key = o_key[i];
        v_found := FOUND;
        v_base := coalesce(v_base, 0);
        IF o_type[i] = 'p' THEN
            INSERT INTO @s@.accord_records AS r
                (key, kind, data, version, revision, author, lamport, clock, deleted, expires)
            VALUES (o_key[i], o_kind[i], o_data[i], v_base + 1, v_rev, o_author[i],
                    o_lamport[i], o_clock[i], false, v_now + o_ttl[i])
            ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, data = EXCLUDED.data,
                version = EXCLUDED.version, revision = EXCLUDED.revision,
                author = EXCLUDED.author, lamport = EXCLUDED.lamport, clock = EXCLUDED.clock,
                deleted = false, expires = EXCLUDED.expires;
            v_changed := v_changed || o_key[i];
            IF o_event[i] IS NOT NULL THEN
                INSERT INTO @s@.accord_events
                    (rev, key, ts, version, prev, hash, expires, change, body)
                    VALUES (v_rev, o_evkey[i], v_now, v_base + 1, v_base, o_hash[i],
                            v_now + o_ttl[i], o_evkey[i] IS NOT DISTINCT FROM o_key[i],
                            o_event[i]);
            END IF;
        ELSIF o_type[i] = 'x' THEN
            -- purge: the row goes, and the version chain with it (internal keys only)
            IF v_found THEN
                DELETE FROM @s@.accord_records r WHERE r.key = o_key[i];
                v_changed := v_changed || o_key[i];
                v_purged := true;
            END IF;
            IF o_event[i] IS NOT NULL THEN
                INSERT INTO @s@.accord_events (rev, key, ts, version, prev, change, body)
                    VALUES (v_rev, o_evkey[i], v_now, NULL, v_base,
                            v_found AND o_evkey[i] IS NOT DISTINCT FROM o_key[i], o_event[i]);
            END IF;
        ELSE
            -- delete: a tombstone keeps the version, so a re-create continues it
            IF v_found AND NOT v_del THEN
                UPDATE @s@.accord_records r SET data = '', version = v_base + 1,
                    revision = v_rev, author = o_author[i], lamport = o_lamport[i],
                    clock = o_clock[i], deleted = true, expires = NULL
                    WHERE r.key = o_key[i];
                v_changed := v_changed || o_key[i];
                v_base := v_base + 1;
                IF o_event[i] IS NOT NULL THEN
                    INSERT INTO @s@.accord_events (rev, key, ts, version, prev, change, body)
                        VALUES (v_rev, o_evkey[i], v_now, v_base, v_base - 1,
                                o_evkey[i] IS NOT DISTINCT FROM o_key[i], o_event[i]);
                END IF;
            ELSIF o_event[i] IS NOT NULL THEN
                INSERT INTO @s@.accord_events (rev, key, ts, version, prev, body)
                    VALUES (v_rev, o_evkey[i], v_now,
                            CASE WHEN v_found THEN v_base END, v_base, o_event[i]);
            END IF;
        END IF;
    END LOOP;

    IF v_rev <> v_rev0 THEN
        UPDATE @s@.accord_counter c SET rev = v_rev,
            purged = CASE WHEN v_purged THEN v_rev ELSE c.purged END
            WHERE c.id = 1;
    END IF;
    IF v_has_ops AND p_token IS NOT NULL THEN
        INSERT INTO @s@.accord_tokens (token, ts, ok, rev0, rev1, before, failed)
            VALUES (p_token, v_now, v_ok, v_rev0, v_rev, v_before, v_failed);
    END IF;
    IF cardinality(v_changed) > 0 AND EXISTS (SELECT 1 FROM @s@.accord_listeners) THEN
        -- A wake-up hint for wait(), delivered at COMMIT: the revision, then
        -- the keys that changed, or "*" when they do not fit in a payload.
        v_payload := v_rev::text || E'\n' || array_to_string(v_changed, E'\n');
        IF octet_length(v_payload) > 7900 THEN
            v_payload := v_rev::text || E'\n*';
        END IF;
        PERFORM pg_notify(@channel@, v_payload);
    END IF;
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::bytea, NULL::bigint, NULL::bigint,
        NULL::text, NULL::bigint, NULL::text, NULL::boolean, NULL::double precision,
        v_ok, v_rev0, v_rev, v_now, false, NULL::text, v_failed;
END
$fn$
-- ;;
CREATE OR REPLACE FUNCTION @s@.accord_put_if(
    p_token    uuid,
    p_retry    boolean,
    p_key      text,
    p_expect   bigint,
    p_kind     text,
    p_data     bytea,
    p_author   text,
    p_lamport  bigint,
    p_clock    text,
    p_hash     text,
    p_event    text,
    p_evkey    text,
    p_failed   text,
    g_keys     text[],
    g_holders  text[],
    p_window   double precision,
    g_vacant   text,
    g_exempt   text,
    p_refused  text
) RETURNS TABLE (
    r_key text, r_kind text, r_data bytea, r_version bigint, r_revision bigint,
    r_author text, r_lamport bigint, r_clock text, r_deleted boolean,
    r_expires double precision,
    h_ok boolean, h_rev0 bigint, h_rev1 bigint, h_now double precision,
    h_replay boolean, h_before text, h_failed integer
)
LANGUAGE plpgsql AS $fn$
-- The common optimistic write: accord_txn's meaning, in fewer statements.
-- Compares, in this order: vacant(g_vacant) except g_exempt when g_vacant is
-- not NULL, holder(g_keys[i]) == g_holders[i], version(p_key) == p_expect;
-- h_failed numbers the one that refused the write in that order. Success:
-- Put(p_key) with event p_event; failure: Append(p_failed), or Append
-- (p_refused) when the vacant compare refused it and p_refused is not NULL,
-- or no op when p_failed is NULL. The client sends it only for a put without a
-- TTL, p_expect >= 1, holder guards on other keys, and events that name
-- p_evkey (Backend.put_if_version). Returns what accord_txn returns: on a
-- refusal the rows of the touched keys as they are, then the header row; on
-- success the header row alone. The token goes into the event row (not
-- accord_tokens); a repeat finds it there among the key's events of the last
-- p_window seconds (the client retries for less than that) that are newer
-- than its change to version p_expect.
DECLARE
    v_base integer := CASE WHEN g_vacant IS NULL THEN 0 ELSE 1 END;
    v_del boolean;
    v_expires double precision;
    v_author text;
    ev record;
    v_since double precision;
    i integer;
BEGIN
    IF p_retry THEN
        -- A repeat after a lost connection: under the counter lock, the
        -- first attempt has either committed (its event row is visible) or
        -- never will. A first attempt's token is new, so it skips this.
        PERFORM 1 FROM @s@.accord_counter c WHERE c.id = 1 FOR UPDATE;
        v_since := extract(epoch FROM clock_timestamp())::double precision - p_window;
        -- Newest first, back to the window's start or to the key's change
        -- to p_expect, whichever comes first: an event of the first attempt
        -- can only be newer than both.
        FOR ev IN SELECT e.rev, e.ts, e.change, e.version, e.token FROM @s@.accord_events e
                WHERE e.key = p_evkey ORDER BY e.rev DESC LOOP
            EXIT WHEN ev.ts < v_since OR (ev.change AND ev.version <= p_expect);
            CONTINUE WHEN ev.token IS DISTINCT FROM p_token;
            h_ok := ev.change; h_rev0 := ev.rev - 1; h_rev1 := ev.rev; h_now := ev.ts;
            h_replay := true;
            IF NOT h_ok THEN
                -- A refusal: the rows as they are now, for the Conflict.
                RETURN QUERY SELECT r.key::text, r.kind, r.data, r.version, r.revision,
                    r.author, r.lamport, r.clock, r.deleted, r.expires,
                    NULL::boolean, NULL::bigint, NULL::bigint, NULL::double precision,
                    NULL::boolean, NULL::text, NULL::integer
                    FROM @s@.accord_records r
                    WHERE r.key = p_key OR r.key = ANY (coalesce(g_keys, '{}'));
            END IF;
            RETURN NEXT;
            RETURN;
        END LOOP;
    END IF;
    -- The counter lock, as in accord_txn (writers commit one at a time, in
    -- revision order), taken and moved in one statement.
    UPDATE @s@.accord_counter c SET rev = c.rev + 1 WHERE c.id = 1 RETURNING c.rev INTO h_rev1;
    h_rev0 := h_rev1 - 1;
    h_now := extract(epoch FROM clock_timestamp())::double precision;
    h_ok := true;
    h_replay := false;
    -- base.check_compare, target "vacant" (a lease on the key, say): one
    -- probe of an empty key range in the usual case.
    IF g_vacant IS NOT NULL AND EXISTS (
            SELECT 1 FROM @s@.accord_records r
            WHERE r.key >= (g_vacant || '0') COLLATE "C"
              AND r.key < (g_vacant || ':') COLLATE "C"
              AND NOT r.deleted AND (r.expires IS NULL OR r.expires > h_now)
              AND r.key IS DISTINCT FROM g_exempt
              AND substr(r.key, char_length(g_vacant) + 1) ~ '^[0-9]+$') THEN
        h_ok := false;
        h_failed := 1;
    END IF;
    -- base.check_compare, target "holder": a live, unexpired row held by
    -- someone else fails it. Usually no guarded row exists at all (a key
    -- with no queue writer), which one index probe per key settles.
    FOR i IN 1 .. CASE WHEN h_ok THEN coalesce(cardinality(g_keys), 0) ELSE 0 END LOOP
        SELECT r.deleted, r.expires, r.author INTO v_del, v_expires, v_author
            FROM @s@.accord_records r WHERE r.key = g_keys[i] FOR UPDATE;
        IF FOUND AND NOT v_del AND (v_expires IS NULL OR v_expires > h_now)
                AND (v_author = g_holders[i]) IS NOT TRUE THEN
            h_ok := false;
            h_failed := v_base + i;
            EXIT;
        END IF;
    END LOOP;
    IF h_ok THEN
        UPDATE @s@.accord_records r SET kind = p_kind, data = p_data, version = p_expect + 1,
            revision = h_rev1, author = p_author, lamport = p_lamport, clock = p_clock,
            expires = NULL
            WHERE r.key = p_key AND r.version = p_expect AND NOT r.deleted;
        h_ok := FOUND;
        IF NOT h_ok THEN
            h_failed := v_base + coalesce(cardinality(g_keys), 0) + 1;
        END IF;
    END IF;
    IF h_ok THEN
        INSERT INTO @s@.accord_events
            (rev, key, ts, version, prev, hash, expires, change, body, token)
            VALUES (h_rev1, p_evkey, h_now, p_expect + 1, p_expect, p_hash, NULL, true, p_event,
                    p_token);
        IF EXISTS (SELECT 1 FROM @s@.accord_listeners) THEN
            PERFORM pg_notify(@channel@, h_rev1::text || E'\n' || p_key);
        END IF;
    ELSE
        -- Refused: the rows as they are, for the client's Conflict.
        RETURN QUERY SELECT r.key::text, r.kind, r.data, r.version, r.revision, r.author,
            r.lamport, r.clock, r.deleted, r.expires,
            NULL::boolean, NULL::bigint, NULL::bigint, NULL::double precision,
            NULL::boolean, NULL::text, NULL::integer
            FROM @s@.accord_records r
            WHERE r.key = p_key OR r.key = ANY (coalesce(g_keys, '{}'));
        IF h_failed = 1 AND v_base = 1 AND p_refused IS NOT NULL THEN
            INSERT INTO @s@.accord_events (rev, key, ts, body, token)
                VALUES (h_rev1, p_evkey, h_now, p_refused, p_token);
        ELSIF p_failed IS NULL THEN
            -- Nothing to record (and so nothing a repeat could find: it
            -- decides again, which for a refusal is the same answer).
            UPDATE @s@.accord_counter c SET rev = h_rev0 WHERE c.id = 1;
            h_rev1 := h_rev0;
        ELSE
            INSERT INTO @s@.accord_events (rev, key, ts, body, token)
                VALUES (h_rev1, p_evkey, h_now, p_failed, p_token);
        END IF;
        -- As in accord_txn: a refusal only appends history, so it commits
        -- without waiting for the flush.
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    RETURN NEXT;
END
$fn$
-- ;;
CREATE OR REPLACE FUNCTION @s@.accord_purge(
    p_keys text[], p_before double precision
) RETURNS integer
LANGUAGE plpgsql AS $fn$
-- Remove the expired rows among p_keys (the client found the candidates
-- without any lock; they are checked again here, under the counter lock).
DECLARE
    v_rev bigint;
    v_count integer;
BEGIN
    SELECT c.rev INTO v_rev FROM @s@.accord_counter c WHERE c.id = 1 FOR UPDATE;
    DELETE FROM @s@.accord_records r WHERE r.key = ANY (p_keys)
        AND r.expires IS NOT NULL AND r.expires < p_before;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        UPDATE @s@.accord_counter c SET rev = v_rev + 1, purged = v_rev + 1 WHERE c.id = 1;
        IF EXISTS (SELECT 1 FROM @s@.accord_listeners) THEN
            PERFORM pg_notify(@channel@, (v_rev + 1)::text || E'\n*');
        END IF;
    END IF;
    RETURN v_count;
END
$fn$

-- Latchkey schema v4: key rotation. At most one `next` key per algorithm, as there is at most
-- one active one (0001): replicas that race to publish a successor collide here, and exactly one
-- wins, so each rotation makes exactly one new key per algorithm.
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (alg) WHERE status = 'next';

# 150_kept_ring_bounds.pl
#
# Proves that a kept ring is safe on a shared server:
#
#  - it ends with what owns it: the keepalive becoming 0 (SET, RESET,
#    RESET ALL, DISCARD ALL, the end of a SET LOCAL) or DROP EXTENSION in its
#    session takes it down by the end of that statement or transaction;
#    another session's DROP and CREATE EXTENSION, or REVOKE, takes it down
#    at the owner's next call or statement, and it is never claimed;
#  - test_shm_mq_ext.max_kept_workers bounds what idle kept rings hold across
#    sessions, and a reload changes it;
#  - a lost ring is reported whichever worker was lost, worker 1 included;
#  - an idle kept worker gives back a large message's buffer;
#  - workers run as the calling role, and only that role claims its ring;
#  - a session waiting for worker slots is served: two sessions looping
#    8-worker calls share the slots.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

my $node            = new_node('kept_ring_bounds');
my $segments_before = dsm_segments($node);

# Keeping needs the extension's shared state; without it, what is tested is
# that nothing is kept, and the session is told so.
if (!has_shared_state($node))
{
	check_no_keeping($node);
	check_no_leftovers($node, $segments_before, 'no shared state');
	$node->stop;
	done_testing();
	exit;
}
my $control         = TestShmMq::Session->new($node);
my $version = $node->safe_psql('postgres', 'SHOW server_version_num');

# The PIDs of a leader's workers, sorted, once pg_stat_activity shows every
# worker of its ring.
sub workers_of
{
	my ($leader) = @_;
	return [ sort { $a <=> $b }
		  map { $_->{pid} } shown_ring_workers($node, $leader) ];
}

# A superuser session that keeps its rings for a minute.
sub keeping_session
{
	my $session = TestShmMq::Session->new($node, @_);

	$session->query("SET test_shm_mq_ext.ring_keepalive = '1min'");
	return $session;
}

# Run a statement and assert it succeeded without a word.
sub quietly
{
	my ($session, $sql, $label) = @_;
	my $result = $session->query($sql);

	is($result->{stderr}, '', "$label: $sql succeeds without a word");
	return $result;
}

# Make a ring of n workers in the session and assert it is kept.
sub kept_ring
{
	my ($session, $nworkers, $label) = @_;

	quietly($session, "SELECT test_shm_mq(1024, 'kept', 1, $nworkers)",
		$label);
	my $pids = workers_of($session->pid);
	is(scalar @$pids, $nworkers, "$label: $nworkers workers kept");
	return $pids;
}

# The keepalive becoming 0, by any means, in the owner's session.
foreach my $reset (
	'SET test_shm_mq_ext.ring_keepalive = 0',
	'RESET test_shm_mq_ext.ring_keepalive',
	'RESET ALL', 'DISCARD ALL',
	'BEGIN; SET test_shm_mq_ext.ring_keepalive = 0; COMMIT')
{
	my $label   = "keepalive ended by $reset";
	my $session = keeping_session();

	kept_ring($session, 2, $label);
	quietly($session, $reset, $label);
	is_deeply(workers_of($session->pid), [], "$label: the ring is gone");
	$session->close;
}

# A SET LOCAL keepalive keeps the ring for the transaction only.
{
	my $label   = 'SET LOCAL keepalive';
	my $session = TestShmMq::Session->new($node);

	quietly(
		$session,
		"BEGIN; SET LOCAL test_shm_mq_ext.ring_keepalive = '1min'; "
		  . "SELECT test_shm_mq(1024, 'a', 1, 2)", $label);
	is(scalar @{ workers_of($session->pid) },
		2, "$label: kept within the transaction");
	quietly($session, 'COMMIT', $label);
	is_deeply(workers_of($session->pid), [], "$label: gone at COMMIT");
	$session->close;
}

# DROP EXTENSION in the owner's session, then CREATE EXTENSION.
{
	my $label   = 'DROP EXTENSION in the owner\'s session';
	my $session = keeping_session();
	my $old     = kept_ring($session, 2, $label);

	quietly($session, 'DROP EXTENSION test_shm_mq_ext', $label);
	is_deeply(workers_of($session->pid), [], "$label: the ring is gone");
	quietly($session, 'CREATE EXTENSION test_shm_mq_ext', $label);
	my $new = kept_ring($session, 2, "$label, then CREATE EXTENSION");
	ok(!grep({ my $p = $_; grep { $_ == $p } @$old } @$new),
		"$label: CREATE EXTENSION again builds a new ring");
	$session->close;
}

# Another session drops the extension and creates it again.
{
	my $label   = 'DROP and CREATE EXTENSION in another session';
	my $session = keeping_session();
	my $old     = kept_ring($session, 2, $label);

	$node->safe_psql('postgres',
		'DROP EXTENSION test_shm_mq_ext; CREATE EXTENSION test_shm_mq_ext');
	my $new = kept_ring($session, 2, "$label, the owner's next call");
	ok(!grep({ my $p = $_; grep { $_ == $p } @$old } @$new),
		"$label: the old ring is not claimed");
	ok(!grep({ !process_gone($_) } @$old), "$label: the old ring is gone");
	$session->close;
}

# REVOKE in another session.
{
	my $label = 'REVOKE in another session';

	$node->safe_psql('postgres', q{
		CREATE ROLE regress_keeper LOGIN;
		ALTER ROLE regress_keeper SET test_shm_mq_ext.ring_keepalive = '1min'});
	grant_ring_functions($node, 'regress_keeper');
	my $session = TestShmMq::Session->new($node, user => 'regress_keeper');
	kept_ring($session, 2, $label);
	$node->safe_psql('postgres',
		'REVOKE EXECUTE ON FUNCTION test_shm_mq(int8, text, int4, int4) '
		  . 'FROM regress_keeper');
	like($session->query("SELECT test_shm_mq(1024, 'x', 1, 2)")->{stderr},
		qr/ERROR:  42501: permission denied/, "$label: the next call fails");
	quietly($session, 'SELECT 1', $label);
	is_deeply(workers_of($session->pid), [],
		"$label: the ring is gone by the next statement");
	$session->close;
}

# The cap across two sessions, and a reload that raises it.
{
	my $label = 'max_kept_workers = 4';
	my $a     = keeping_session();
	my $b     = keeping_session();

	kept_ring($a, 3, "$label, session A");
	quietly($b, "SELECT test_shm_mq(1024, 'b', 1, 2)", "$label, session B");
	is_deeply(workers_of($b->pid), [],
		"$label: B's ring, over the cap, is taken down as its call ends");
	is(scalar @{ workers_of($a->pid) }, 3, "$label: A's ring stays");

	$node->append_conf('postgresql.conf', 'test_shm_mq_ext.max_kept_workers = 5');
	$node->reload;
	my $deadline = TestShmMq::now() + 10;
	while (TestShmMq::now() < $deadline)
	{
		last if $b->query('SHOW test_shm_mq_ext.max_kept_workers')->{stdout} eq '5';
		pause(0.1);
	}
	kept_ring($b, 2, "$label, raised to 5 by a reload, session B");
	is(scalar @{ workers_of($a->pid) }, 3, "$label: A's ring still stays");
	$a->close;
	$b->close;
	$node->append_conf('postgresql.conf', 'test_shm_mq_ext.max_kept_workers = 4');
	$node->reload;
}

# A lost ring is reported whichever worker was lost.
foreach my $nworkers (1, 2, 3)
{
	foreach my $lost (1, $nworkers)
	{
		my $label   = "worker $lost of a kept ring of $nworkers lost";
		my $session = keeping_session();
		my $pids    = kept_ring($session, $nworkers, $label);
		my ($worker_pid) = map { $_->{pid} }
		  grep { $_->{number} == $lost }
		  shown_ring_workers($node, $session->pid);

		$control->query("SELECT pg_terminate_backend($worker_pid)");
		my $deadline = TestShmMq::now() + 10;
		pause(0.05) while grep({ !process_gone($_) } @$pids)
		  && TestShmMq::now() < $deadline;
		my $plural = $nworkers == 1 ? 'worker' : 'workers';
		like(
			$session->query("SELECT test_shm_mq(1024, 'again', 1, $nworkers)")->{stderr},
			qr/^NOTICE:  00000: kept ring of $nworkers $plural was lost, starting a new one\nDETAIL:  Worker $lost of $nworkers reported: terminating background worker "test_shm_mq_ext" due to administrator command\.$/m,
			"$label: the next call says so, in the worker's words");
		is(scalar @{ workers_of($session->pid) }, $nworkers,
			"$label: a new ring is kept");
		$session->close;
	}
}
check_no_leftovers($node, $segments_before, 'after lost rings', settle => 1);

# An idle kept worker gives back the buffer of a large message.
{
	my $label = 'memory after a large message';
	my $mb    = 100;

	# RssAnon of a leader's workers, in kB, once all are idle.
	my $rss_of = sub {
		my ($leader) = @_;
		my $deadline = TestShmMq::now() + 10;
		while (TestShmMq::now() < $deadline)
		{
			last
			  unless grep { defined $_->{state} && $_->{state} ne 'idle' }
			  shown_ring_workers($control, $leader, 'state');
			pause(0.05);
		}
		my @rss;
		foreach my $pid (@{ workers_of($leader) })
		{
			open my $fh, '<', "/proc/$pid/status" or next;
			push @rss, map { /^RssAnon:\s+(\d+)/ ? $1 : () } <$fh>;
			close $fh;
		}
		return [ sort { $a <=> $b } @rss ];
	};

	my $fresh = keeping_session();
	kept_ring($fresh, 4, "$label, a fresh ring");
	my $fresh_rss = $rss_of->($fresh->pid);
	$fresh->close;

	my $large = keeping_session();
	quietly($large,
		"SELECT test_shm_mq(65536, repeat('m', $mb * 1000000), 1, 4)", $label);
	my $large_rss = $rss_of->($large->pid);
	note "RssAnon of idle workers, kB: fresh @$fresh_rss; after a $mb MB message @$large_rss";
	is(scalar @$large_rss, 4, "$label: four idle workers");
	ok($large_rss->[-1] <= $fresh_rss->[-1] + 8192,
		"$label: no idle worker holds more than a fresh one, give or take 8 MB "
		  . "($large_rss->[-1] kB against $fresh_rss->[-1] kB)");
	quietly($large, "SELECT test_shm_mq(65536, 'small', 1, 4)",
		"$label, the ring still works");
	$large->close;
}

# Workers run as the calling role; only that role claims the ring.
{
	my $label = 'SET ROLE';

	$node->safe_psql('postgres', q{
		CREATE ROLE regress_group NOLOGIN;
		CREATE ROLE regress_member LOGIN;
		CREATE ROLE regress_other LOGIN;
		GRANT regress_group, regress_other TO regress_member;
		ALTER ROLE regress_member SET test_shm_mq_ext.ring_keepalive = '1min'});
	grant_ring_functions($node, 'regress_group');
	grant_ring_functions($node, 'regress_other');
	my $session = TestShmMq::Session->new($node, user => 'regress_member');
	my $users_of = sub {
		my ($leader) = @_;
		my %users = map { $_->{usename} => 1 }
		  grep { defined $_->{usename} }
		  shown_ring_workers($control, $leader, 'usename');

		return join(',', sort keys %users);
	};

	quietly($session, 'SET ROLE regress_group', $label);
	my $group_ring = kept_ring($session, 2, "$label to a NOLOGIN group role");
	is($users_of->($session->pid),
		$version >= 170000 ? 'regress_group' : 'regress_member',
		"$label to a NOLOGIN group role: workers run as "
		  . ($version >= 170000 ? 'that role' : 'the session user'));

	quietly($session, 'SET ROLE regress_other', $label);
	my $other_ring = kept_ring($session, 2, "$label to a LOGIN role");
	is($users_of->($session->pid), 'regress_other',
		"$label to a LOGIN role: workers run as that role");
	ok(!grep({ my $p = $_; grep { $_ == $p } @$group_ring } @$other_ring),
		"$label: another role's ring is not claimed");
	is($session->query(
		"SELECT pg_terminate_backend($other_ring->[0])")->{stdout},
		't', "$label: the role may signal its own workers");
	$session->close;
}

check_no_leftovers($node, $segments_before, 'the end', settle => 1);
$node->stop;

# The waiter served: two sessions loop 8-worker calls, 50 ms keepalive.
{
	my $label = 'two sessions looping 8-worker calls';
	my $busy  = new_node(
		'kept_ring_fairness',
		max_worker_processes => 16,
		conf => [ 'test_shm_mq_ext.max_kept_workers = 8' ]);
	my $seconds = 15;

	$busy->safe_psql('postgres', q{
		CREATE FUNCTION call_loop(seconds float8) RETURNS text
		LANGUAGE plpgsql AS $$
		DECLARE
			ok int := 0;
			failed int := 0;
			deadline timestamptz := clock_timestamp() + seconds * interval '1s';
		BEGIN
			WHILE clock_timestamp() < deadline LOOP
				BEGIN
					PERFORM test_shm_mq(1024, 'x', 1, 8);
					ok := ok + 1;
				EXCEPTION WHEN insufficient_resources THEN
					failed := failed + 1;
				END;
			END LOOP;
			RETURN ok || ' ' || failed;
		END
		$$});
	my @sessions = map { TestShmMq::Session->new($busy) } 1 .. 2;
	foreach my $session (@sessions)
	{
		$session->query(
			"SET test_shm_mq_ext.ring_keepalive = 50; SET test_shm_mq_ext.worker_slot_wait = 1000");
	}
	$sessions[0]->send("SELECT call_loop($seconds + 1)");
	pause(0.5);
	my $b = $sessions[1]->query("SELECT call_loop($seconds)",
		timeout => $seconds * 4)->{stdout};
	my $a = $sessions[0]->wait_result(timeout => $seconds * 4)->{stdout};
	my ($b_ok, $b_failed) = split / /, $b;
	note "$label: A $a, B $b (succeeded, failed)";
	ok($b_ok + $b_failed > 0, "$label: B made calls");
	cmp_ok($b_ok / ($b_ok + $b_failed || 1), '>=', 0.4,
		"$label: B succeeds in at least 40% of its calls ($b_ok of "
		  . ($b_ok + $b_failed) . ")");
	$_->close foreach @sessions;
	$busy->stop;
}

done_testing();

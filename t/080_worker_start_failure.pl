
# 080_worker_start_failure.pl
#
# Proves that a worker that fails while connecting gets its reason to the
# caller within a second.  Workers whose role says
# test_shm_mq_ext.worker_connect_delay = 0 connect before they are ready:
#
#   ERROR:  28000: one or more workers failed to start
#   DETAIL:  Worker K of N reported: <the worker's own error>.
#   CONTEXT:  test_shm_mq_ext worker K of N, PID <that worker's PID>
#
# and that the ring's other workers, which may have started fine, do not
# outlive the call.  Workers connect as the leader's authenticated user with
# BGWORKER_BYPASS_ALLOWCONN, so neither datallowconn, nor CONNECT privilege,
# nor a connection limit stops them (background workers are not counted).
# Two things do make their InitPostgres() fail, reliably:
#
#  - the role lost LOGIN after the leader connected ("role ... is not
#    permitted to log in"); only before PostgreSQL 17, whose
#    BGWORKER_BYPASS_ROLELOGINCHECK the extension uses;
#  - the role was dropped after the leader connected ("role with OID ...
#    does not exist").
#
# The PID in the context line is checked against the server log, where the
# worker logged the same error under its own PID.  By default workers
# connect only after 100 ms: then a short call of a dropped role succeeds,
# and a long one fails as its workers connect, with their own error.
# Afterwards no worker process and no segment of ours is left, and the other
# checks that do not stop workers (REVOKE CONNECT, CONNECTION LIMIT 0) are
# shown not to.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

my $node            = new_node('worker_start_failure');
my $segments_before = dsm_segments($node);

# A dropped role holds no grants, so a session whose role was dropped calls
# through a function that runs as its owner, a superuser.  The workers still
# connect as the session's user.

# Run calls with 1 and with 3 workers, through $call (SQL with %d for the
# number of workers), as a session whose role has just been broken by $break
# (SQL run as superuser after the session connected), and check that each
# fails with the worker's reason, matched by $reason.  The role's workers
# connect at once (test_shm_mq_ext.worker_connect_delay = 0), before they
# count themselves ready.
sub check_start_failure
{
	my ($name, $role, $break, $reason, $call) = @_;

	$node->safe_psql('postgres', "CREATE ROLE $role LOGIN");
	$node->safe_psql('postgres',
		"ALTER ROLE $role SET test_shm_mq_ext.worker_connect_delay = 0");
	grant_ring_functions($node, $role);
	my $session = TestShmMq::Session->new($node, user => $role);
	$node->safe_psql('postgres', $break);

	foreach my $nworkers (1, 3)
	{
		my $label = "$name, $nworkers worker" . ($nworkers > 1 ? 's' : '');
		my $log_offset = -s $node->logfile;
		my $result = $session->query(sprintf($call, $nworkers));
		my $error = parse_error($result->{stderr}) // {};

		ok($result->{finished}, "$label: the call ended");
		is($error->{severity}, 'ERROR', "$label: ERROR");
		is($error->{sqlstate}, '28000', "$label: SQLSTATE 28000");
		is( $error->{message},
			'one or more workers failed to start',
			"$label: message");
		like(
			$error->{detail} // '',
			qr/^Worker [1-$nworkers] of $nworkers reported: $reason\.$/,
			"$label: the detail gives the worker's reason");
		like(
			$error->{context} // '',
			qr/^test_shm_mq_ext worker [1-$nworkers] of $nworkers, PID \d+$/,
			"$label: the context names the worker");
		check_time_to_error($label, $result->{sent_at}, $result->{error_at});

		# The worker logged its error under its own PID.
		my ($pid) = ($error->{context} // '') =~ /PID (\d+)$/;
		ok( defined $pid && $node->log_contains(
				qr/\[$pid\] (?:\S+ )?FATAL:  $reason$/m, $log_offset),
			"$label: the PID in the context is the failing worker's");

		check_no_leftovers($node, $segments_before, $label);
	}

	$session->close;
	return;
}

SKIP:
{
	# check_start_failure() runs 11 tests for each of its 2 calls.
	skip 'PostgreSQL 17 lets workers connect as a role without LOGIN', 22
	  if $node->pg_version >= 17;

	check_start_failure(
		'role lost LOGIN',
		'start_nologin',
		'ALTER ROLE start_nologin NOLOGIN',
		'role "start_nologin" is not permitted to log in',
		"SELECT test_shm_mq(1024, 'x', 1, %d)");
}

# A dropped role holds no grants; PUBLIC's let it call.  Workers connect as
# the calling role, so a SECURITY DEFINER function would run them as its
# owner instead.
check_start_failure(
	'role dropped',
	'start_dropped',
	'DROP OWNED BY start_dropped; DROP ROLE start_dropped; '
	  . 'GRANT EXECUTE ON FUNCTION test_shm_mq(int8, text, int4, int4) TO PUBLIC',
	'role with OID \d+ does not exist',
	"SELECT test_shm_mq(1024, 'x', 1, %d)");
$node->safe_psql('postgres',
	'REVOKE EXECUTE ON FUNCTION test_shm_mq(int8, text, int4, int4) FROM PUBLIC');

# By default a worker connects only once it has run for
# test_shm_mq_ext.worker_connect_delay (100 ms): a short call of a dropped
# role succeeds, its workers never connecting, and a long one fails as its
# workers connect, with their own error and a context line naming them, as
# any worker's error reaches the caller.
{
	my $label = 'role dropped, workers connecting after 100 ms';

	$node->safe_psql('postgres', 'CREATE ROLE start_dropped_later LOGIN');
	my $session =
	  TestShmMq::Session->new($node, user => 'start_dropped_later');
	$node->safe_psql(
		'postgres', q{
		DROP ROLE start_dropped_later;
		GRANT EXECUTE ON FUNCTION test_shm_mq(int8, text, int4, int4) TO PUBLIC;
	});
	is($session->query("SELECT test_shm_mq(1024, 'x', 1, 2)")->{stderr},
		'', "$label: a one-trip call succeeds");

	my $result =
	  $session->query("SELECT test_shm_mq(1024, 'x', 2000000000, 2)");
	my $error = parse_error($result->{stderr}) // {};
	is($error->{sqlstate}, '28000', "$label: a long call fails with 28000");
	like(
		$error->{message} // '',
		qr/^role with OID \d+ does not exist$/,
		"$label: in the worker's words");
	like(
		$error->{context} // '',
		qr/^test_shm_mq_ext worker [12] of 2, PID \d+$/,
		"$label: the context names the worker");
	check_time_to_error("$label, less the 100 ms",
		$result->{sent_at} + 0.1, $result->{error_at});
	$session->close;
	$node->safe_psql('postgres',
		'REVOKE EXECUTE ON FUNCTION test_shm_mq(int8, text, int4, int4) FROM PUBLIC'
	);
	check_no_leftovers($node, $segments_before, $label);
}

# What does not stop a worker: the call succeeds, its workers connecting at
# once.
$node->safe_psql('postgres', 'CREATE ROLE start_limited LOGIN');
$node->safe_psql('postgres',
	'ALTER ROLE start_limited SET test_shm_mq_ext.worker_connect_delay = 0');
grant_ring_functions($node, 'start_limited');
my $session = TestShmMq::Session->new($node, user => 'start_limited');
$node->safe_psql(
	'template1', q{
	REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
	ALTER DATABASE postgres ALLOW_CONNECTIONS false;
	ALTER ROLE start_limited CONNECTION LIMIT 0;
});
is($session->query("SELECT test_shm_mq(1024, 'x', 1, 3)")->{stderr}, '',
	'no CONNECT privilege, no connections allowed, a connection limit of 0: workers still start'
);
$session->close;
$node->safe_psql(
	'template1', q{
	ALTER DATABASE postgres ALLOW_CONNECTIONS true;
	GRANT CONNECT ON DATABASE postgres TO PUBLIC;
});

check_no_leftovers($node, $segments_before, 'end');
$node->stop;
done_testing();

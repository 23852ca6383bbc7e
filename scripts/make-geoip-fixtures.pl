#!/usr/bin/perl
# Writes the GeoIP test databases in test/fixtures/geoip/ with MaxMind's own writer.
#
# The firewall reads them with mmdb-lib; writing them with MaxMind::DB::Writer (an
# independent implementation, Debian: libmaxmind-db-writer-perl) keeps the tests from
# checking the reader against itself. CI has no Perl modules, so the output is committed:
# run this again only when the fixtures must change, then commit what it wrote.
#
#   perl scripts/make-geoip-fixtures.pl [output-dir]    (default test/fixtures/geoip)
use strict;
use warnings;

# Perl randomises hash order per process and the writer serialises maps in hash order;
# a fixed seed makes two runs write identical bytes, so a re-run shows no diff.
BEGIN {
    if ( ( $ENV{PERL_HASH_SEED} // '' ) ne '0' ) {
        $ENV{PERL_HASH_SEED}     = '0';
        $ENV{PERL_PERTURB_KEYS}  = '0';
        exec $^X, $0, @ARGV or die "re-exec with PERL_HASH_SEED=0: $!\n";
    }
}

use File::Path qw(make_path);
use MaxMind::DB::Writer::Tree;

my $out_dir = shift @ARGV // 'test/fixtures/geoip';
make_path($out_dir);

# 2026-01-01T00:00:00Z, so that GeoIpDatabase.buildEpoch has a known value to assert.
my $BUILD_EPOCH = 1767225600;

# Value types of every map key used below (the writer needs them spelled out).
my %TYPES = (
    accuracy_radius                => 'uint16',
    autonomous_system_number       => 'uint32',
    autonomous_system_organization => 'utf8_string',
    city                           => 'map',
    code                           => 'utf8_string',
    continent                      => 'map',
    country                        => 'map',
    en                             => 'utf8_string',
    geoname_id                     => 'uint32',
    is_in_european_union           => 'boolean',
    iso_code                       => 'utf8_string',
    latitude                       => 'double',
    location                       => 'map',
    longitude                      => 'double',
    names                          => 'map',
    registered_country             => 'map',
    ru                             => 'utf8_string',
    subdivisions                   => [ 'array', 'map' ],
    time_zone                      => 'utf8_string',
);

# Country → [geoname_id, English name, continent code], as in GeoLite2.
my %COUNTRIES = (
    CN => [ 1814991, 'China',       'AS' ],
    DE => [ 2921044, 'Germany',     'EU' ],
    FR => [ 3017382, 'France',      'EU' ],
    JP => [ 1861060, 'Japan',       'AS' ],
    KP => [ 1873107, 'North Korea', 'AS' ],
    RU => [ 2017370, 'Russia',      'EU' ],
);

sub country_record {
    my ($code) = @_;
    my ( $id, $name ) = @{ $COUNTRIES{$code} };
    return { geoname_id => $id, iso_code => $code, names => { en => $name } };
}

sub continent_record {
    my ($code) = @_;
    my $continent = $COUNTRIES{$code}[2];
    my %names = ( AS => 'Asia', EU => 'Europe' );
    return { code => $continent, geoname_id => 6255148, names => { en => $names{$continent} } };
}

# GeoIP2-Country shape: continent, country, registered_country.
sub country_data {
    my ($code) = @_;
    return {
        continent          => continent_record($code),
        country            => country_record($code),
        registered_country => country_record($code),
    };
}

# GeoIP2-City shape: the Country fields plus city, location and subdivisions.
sub city_data {
    my ( $code, $city, $lat, $lon, $tz ) = @_;
    return {
        %{ country_data($code) },
        city         => { geoname_id => 524901, names => { en => $city, ru => $city } },
        location     => { accuracy_radius => 50, latitude => $lat, longitude => $lon, time_zone => $tz },
        subdivisions => [ { geoname_id => 524894, iso_code => 'MOW', names => { en => $city } } ],
    };
}

sub new_tree {
    my (%args) = @_;
    return MaxMind::DB::Writer::Tree->new(
        ip_version    => $args{ip_version} // 6,
        # GeoLite2-Country uses 24-bit records, GeoLite2-City 28; the fixtures cover 24, 28 and 32.
        record_size   => $args{record_size} // 24,
        database_type => $args{database_type},
        languages     => ['en'],
        description   => { en => "mc-proxy test fixture ($args{database_type})" },
        # Real GeoLite2 databases are IPv6 with ::ffff:0:0/96 aliased to the IPv4 subtree.
        alias_ipv6_to_ipv4 => ( $args{ip_version} // 6 ) == 6 ? 1 : 0,
        # The tests use loopback and documentation addresses, which the writer drops by default.
        remove_reserved_networks => 0,
        map_key_type_callback    => sub { $TYPES{ $_[0] } },
    );
}

sub write_db {
    my ( $tree, $name ) = @_;
    $tree->_set_build_epoch($BUILD_EPOCH);
    my $path = "$out_dir/$name";
    open my $fh, '>:raw', $path or die "open $path: $!\n";
    $tree->write_tree($fh);
    close $fh or die "close $path: $!\n";
    print "wrote $path\n";
    return $path;
}

sub country_db {
    my ( $name, $client_country ) = @_;
    my $tree = new_tree( database_type => 'GeoIP2-Country' );
    $tree->insert_network( '127.0.0.2/32',    country_data('RU') );
    $tree->insert_network( '127.0.0.3/32',    country_data('CN') );
    # The SIGHUP test's client: DE in country-a, RU in country-b.
    $tree->insert_network( '127.0.0.4/32',    country_data($client_country) );
    # Located nowhere, only registered: the reader falls back to registered_country.
    $tree->insert_network( '127.0.0.5/32',    { registered_country => country_record('KP') } );
    $tree->insert_network( '203.0.113.0/24',  country_data('FR') );
    $tree->insert_network( '::1/128',         country_data('JP') );
    $tree->insert_network( '2001:db8:1::/48', country_data('RU') );
    return write_db( $tree, $name );
}

country_db( 'country-a.mmdb', 'DE' );
country_db( 'country-b.mmdb', 'RU' );

{
    my $tree = new_tree( database_type => 'GeoIP2-City', record_size => 28 );
    $tree->insert_network( '127.0.0.2/32', city_data( 'RU', 'Moscow', 55.7522, 37.6156, 'Europe/Moscow' ) );
    $tree->insert_network( '2001:db8:2::/48', city_data( 'RU', 'Moscow', 55.7522, 37.6156, 'Europe/Moscow' ) );
    write_db( $tree, 'city.mmdb' );
}

{
    # An IPv4-only tree (ip_version 4): IPv6 clients must find nothing, not a wrong country.
    my $tree = new_tree( database_type => 'GeoLite2-Country', ip_version => 4, record_size => 32 );
    $tree->insert_network( '127.0.0.2/32', country_data('RU') );
    write_db( $tree, 'country-ipv4.mmdb' );
}

{
    # A well-formed database of the wrong kind: opening it as a country database must fail.
    my $tree = new_tree( database_type => 'GeoLite2-ASN' );
    $tree->insert_network( '127.0.0.2/32',
        { autonomous_system_number => 64512, autonomous_system_organization => 'Example' } );
    write_db( $tree, 'asn.mmdb' );
}

{
    # The first half of country-a.mmdb: tree without data section or metadata.
    my $source = "$out_dir/country-a.mmdb";
    open my $in, '<:raw', $source or die "open $source: $!\n";
    local $/;
    my $bytes = <$in>;
    close $in;
    my $path = "$out_dir/corrupt.mmdb";
    open my $out, '>:raw', $path or die "open $path: $!\n";
    print {$out} substr( $bytes, 0, int( length($bytes) / 2 ) );
    close $out or die "close $path: $!\n";
    print "wrote $path\n";
}

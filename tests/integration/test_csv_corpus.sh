#!/usr/bin/env bash
# test_csv_corpus.sh — every tests/csv/<name>.csv through the real binary:
# `ctct-sync import --dry-run` against the sandbox's demo account, with the
# options its <name>.expected asks for ("# args:"), then compare the exit
# code ("# exit:"), stderr ("# error:") and the report: row, email, status
# and a message substring per data row, every row exactly once, in order.
. "$(dirname "$0")/lib.sh"

CORPUS="$TOP/tests/csv"
# --rate 0: this script checks intake, not pacing; dozens of dry runs in a
# row would otherwise meet the sandbox's 4 requests/s per key.
sb_start --rate 0 || { not_ok "sandbox starts"; finish; }
V3TOK=$("$SANDBOX" --print-demo-token)
V3=(--api-key demo-v3-client-00000000000001 --base-url "$SB_URL/v3"
    --auth-url "$SB_URL/oauth2/default/v1"
    --list 8c2b2d3e-0001-4000-8000-000000000001)
V2=(--api-key demo-v2-key-0000000000000001 --base-url "$SB_URL/v2"
    --auth-url "$SB_URL/oauth2" --list 1)

# compare_report EXPECTED REPORT: prints one line per mismatch (perl-base
# is on every Debian system; it parses RFC 4180 with embedded newlines).
compare_report() {
    perl -e '
        use strict; use warnings;
        sub parse_csv {
            my ($d) = @_; my (@rows, @f);
            $d =~ s/^\xEF\xBB\xBF//;
            while ($d =~ /\G(?:"((?:[^"]|"")*)"|([^,\r\n]*))(,|\r?\n|\z)/gc) {
                my ($q, $u, $end) = ($1, $2, $3);
                push @f, defined $q ? $q =~ s/""/"/gr : $u;
                if ($end ne ",") { push @rows, [@f]; @f = (); last if $end eq ""; }
            }
            return @rows;
        }
        my ($exp, $rep) = @ARGV;
        open(my $fh, "<", $exp) or die; my @want;
        while (my $l = <$fh>) {
            chomp $l; next if $l =~ /^#/ || $l eq "";
            # row,email,status,message-substring (the message may hold commas)
            my ($r, $rest) = split /,/, $l, 2; my $email;
            if ($rest =~ s/^"((?:[^"]|"")*)",//) { $email = $1 =~ s/""/"/gr; }
            else { ($email, $rest) = split /,/, $rest, 2; }
            my ($st, $msg) = split /,/, $rest, 2;
            push @want, [$r, $email, $st, $msg // ""];
        }
        local $/; open(my $rh, "<", $rep) or die "no report\n";
        my @got = parse_csv(<$rh>);
        my $hdr = shift @got;
        @got = grep { @$_ > 1 } @got;
        print "report has ", scalar(@got), " rows, expected ", scalar(@want), "\n"
            if @got != @want;
        for my $i (0 .. $#want) {
            my $g = $got[$i] or last; my $w = $want[$i];
            # file,row,email,status,http_status,attempts,contact_id,error_key,message
            my $email = $g->[2] // ""; $email =~ s/^\x27(?=[=+\-\@\t\r])//;
            print "row ", $i + 1, ": row number $g->[1], expected $w->[0]\n"
                if $g->[1] ne $w->[0];
            print "row $w->[0]: email \"$email\", expected \"$w->[1]\"\n"
                if $email ne $w->[1];
            print "row $w->[0]: status $g->[3], expected $w->[2]\n"
                if $g->[3] ne $w->[2];
            print "row $w->[0]: message \"", $g->[8] // "", "\" lacks \"$w->[3]\"\n"
                if $w->[3] ne "" && index($g->[8] // "", $w->[3]) < 0;
        }
    ' "$1" "$2"
}

n=0
for csv in "$CORPUS"/*.csv; do
    name=$(basename "$csv" .csv)
    exp="$CORPUS/$name.expected"
    [ -f "$exp" ] || { not_ok "$name" "no $name.expected"; continue; }
    n=$((n + 1))
    args=$(sed -n 's/^# args: //p' "$exp")
    want_exit=$(sed -n 's/^# exit: //p' "$exp")
    want_err=$(sed -n 's/^# error: //p' "$exp")
    want_enc=$(sed -n 's/^# encoding: //p' "$exp")
    read -r -a extra <<<"$args"
    api=("${V3[@]}")
    tok=$V3TOK
    case " $args " in *" --api v2 "*)
        api=("${V2[@]}")
        tok=demo-v2-token-000000000000000000001 ;;
    esac
    rm -f "$T/report.csv"
    RC=0
    CTCT_ACCESS_TOKEN=$tok $VALGRIND "$CTS" import --dry-run "${api[@]}" \
        "${extra[@]}" --report "$T/report.csv" "$csv" >"$T/out" 2>"$T/err" || RC=$?
    why=""
    if [ "$RC" != "${want_exit:-0}" ]; then
        why="exit $RC, expected ${want_exit:-0}: $(head -c 300 "$T/err")"
    elif [ -n "$want_err" ] && ! grep -qF -- "$want_err" "$T/err"; then
        why="stderr lacks '$want_err': $(head -c 300 "$T/err")"
    elif grep -qF -- "$csv: $csv:" "$T/err"; then
        # One error line names the file once.
        why="file named twice: $(grep -F -- "$csv: $csv:" "$T/err" | head -1)"
    elif [ -n "$want_enc" ] && [ "${want_enc#*converted}" != "$want_enc" ] &&
        ! grep -qF -- "$want_enc" "$T/err"; then
        # A conversion is always announced on stderr; plain UTF-8 need not be.
        why="stderr does not name the encoding '$want_enc'"
    elif [ "${want_exit:-0}" = 0 ] || [ -f "$T/report.csv" ]; then
        # Data errors found before the first row (no header, no email
        # column, bad --map) may leave no report; any report must match.
        if [ "${want_exit:-0}" = 0 ] && [ ! -f "$T/report.csv" ]; then
            why="no report written"
        else
            diffs=$(compare_report "$exp" "$T/report.csv" 2>&1)
            [ -z "$diffs" ] || why=$(printf '%s' "$diffs" | head -5 | tr '\n' ';')
        fi
    fi
    if [ -z "$why" ]; then ok "corpus $name"; else not_ok "corpus $name" "$why"; fi
done
# Standard input takes the streaming path (no pre-scan of the file): the
# encoding is decided from the data as it arrives, with the same result.
for name in cp1252_excel utf16le_excel embedded_newlines; do
    exp="$CORPUS/$name.expected"
    read -r -a extra <<<"$(sed -n 's/^# args: //p' "$exp")"
    rm -f "$T/report.csv"
    RC=0
    CTCT_ACCESS_TOKEN=$V3TOK $VALGRIND "$CTS" import --dry-run "${V3[@]}" \
        "${extra[@]}" --report "$T/report.csv" - <"$CORPUS/$name.csv" \
        >"$T/out" 2>"$T/err" || RC=$?
    diffs=""
    if [ "$RC" != 0 ]; then
        diffs="exit $RC: $(head -c 300 "$T/err")"
    else
        diffs=$(compare_report "$exp" "$T/report.csv" 2>&1)
    fi
    if [ -z "$diffs" ]; then ok "stdin $name"
    else not_ok "stdin $name" "$(printf '%s' "$diffs" | head -3 | tr '\n' ';')"; fi
done

[ "$n" -ge 25 ] && ok "corpus has $n files (>= 25)" || not_ok "corpus size" "only $n files"
finish

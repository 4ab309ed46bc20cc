"""A small list of passwords too common to accept (all at least 10 characters long)."""

COMMON_PASSWORDS = frozenset(
    """
    1234567890 12345678910 0123456789 1111111111 0000000000 1q2w3e4r5t qwertyuiop
    qwertyuiop1 password12 password123 password1234 passw0rd123 iloveyou12 welcome123
    letmein123 football12 baseball12 superman12 administrator admin12345 abcdefghij
    abc1234567 qwerty1234 qwerty12345 asdfghjkl1 zxcvbnm123 monkey1234 dragon1234
    sunshine12 princess12 trustno1234 changeme12 changeme123 p@ssw0rd12 p@ssword123
    q1w2e3r4t5 1qaz2wsx3edc zaq12wsxcde 987654321a aa12345678 11223344556 passwordpassword
    ticketboss ticketboss1 ticketboss123 correcthorse
    """.split()
)

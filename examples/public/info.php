<?php
// A few of the CGI variables the gateway passed to PHP (deliberately not phpinfo()).
declare(strict_types=1);

$keys = [
    'GATEWAY_INTERFACE', 'SERVER_SOFTWARE', 'SERVER_PROTOCOL', 'REQUEST_METHOD', 'REQUEST_URI',
    'QUERY_STRING', 'SCRIPT_NAME', 'SCRIPT_FILENAME', 'PATH_INFO', 'DOCUMENT_ROOT',
    'SERVER_NAME', 'SERVER_PORT', 'REMOTE_ADDR', 'HTTP_HOST', 'HTTP_USER_AGENT',
];
header('Content-Type: text/html; charset=utf-8');
$h = static fn (string $s): string => htmlspecialchars($s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
?>
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Request info · fastcgi-gateway example</title>
  <link rel="stylesheet" href="/assets/style.css">
</head>
<body>
  <header><a href="/"><img src="/assets/logo.svg" alt="" width="32" height="32"> fastcgi-gateway example</a></header>
  <main>
    <h1>Request info</h1>
    <p>PHP <?= $h(PHP_VERSION) ?> (<?= $h(PHP_SAPI) ?>), worker pid <?= getmypid() ?></p>
    <table class="info">
<?php foreach ($keys as $key): ?>
      <tr><th><?= $h($key) ?></th><td><?= isset($_SERVER[$key]) ? $h((string)$_SERVER[$key]) : '<em>unset</em>' ?></td></tr>
<?php endforeach; ?>
    </table>
  </main>
</body>
</html>

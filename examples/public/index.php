<?php
// Front controller for the example app: the gateway sends every path that is not a file here.
// Routes: /  /hello/NAME  /form (GET shows it, POST echoes the fields)  /upload (GET form, POST
// multipart upload → name, size, md5). Every value from the request is escaped on output.
declare(strict_types=1);

function h(string $s): string
{
    return htmlspecialchars($s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

function page(string $title, string $body, int $status = 200): void
{
    http_response_code($status);
    header('Content-Type: text/html; charset=utf-8');
    echo <<<HTML
    <!doctype html>
    <html lang="en">
    <head>
      <meta charset="utf-8">
      <title>{$title} · fastcgi-gateway example</title>
      <link rel="stylesheet" href="/assets/style.css">
    </head>
    <body>
      <header><a href="/"><img src="/assets/logo.svg" alt="" width="32" height="32"> fastcgi-gateway example</a></header>
      <main>
        <h1>{$title}</h1>
    {$body}
      </main>
    </body>
    </html>

    HTML;
}

function home(): void
{
    page('Home', <<<HTML
        <p>This PHP app runs in php-fpm; Node serves it over HTTP through FastCGI.</p>
        <ul>
          <li><a href="/hello/world">/hello/world</a>: a route with a parameter</li>
          <li><a href="/form">/form</a>: a form posted back to PHP</li>
          <li><a href="/upload">/upload</a>: a multipart file upload</li>
          <li><a href="/info.php">/info.php</a>: a few CGI variables PHP received</li>
          <li><a href="/assets/style.css">/assets/style.css</a>: a static file, served by the gateway</li>
        </ul>
    HTML);
}

function hello(string $name): void
{
    $name = h($name);
    page('Hello', "    <p class=\"greeting\">Hello, {$name}!</p>\n");
}

function form(): void
{
    $body = <<<HTML
        <form method="post" action="/form">
          <label>Name <input name="name" required></label>
          <label>Colour
            <select name="colour"><option>red</option><option>green</option><option>blue</option></select>
          </label>
          <label>Message <textarea name="message" rows="3"></textarea></label>
          <button type="submit">Send</button>
        </form>
    HTML;
    if ($_SERVER['REQUEST_METHOD'] === 'POST') {
        $rows = '';
        foreach ($_POST as $field => $value) {
            $shown = is_array($value) ? implode(', ', array_map('strval', $value)) : (string)$value;
            $rows .= '      <dt>' . h((string)$field) . '</dt><dd>' . h($shown) . "</dd>\n";
        }
        $body = "    <h2>You sent</h2>\n    <dl class=\"submitted\">\n{$rows}    </dl>\n" . $body;
    }
    page('Form', $body);
}

function upload(): void
{
    $body = <<<HTML
        <form method="post" action="/upload" enctype="multipart/form-data">
          <label>File <input type="file" name="file" required></label>
          <button type="submit">Upload</button>
        </form>
    HTML;
    $status = 200;
    if ($_SERVER['REQUEST_METHOD'] === 'POST') {
        $file = $_FILES['file'] ?? null;
        if (!is_array($file) || !is_string($file['tmp_name'] ?? null) || ($file['error'] ?? UPLOAD_ERR_NO_FILE) !== UPLOAD_ERR_OK) {
            $code = is_array($file) ? (int)($file['error'] ?? UPLOAD_ERR_NO_FILE) : UPLOAD_ERR_NO_FILE;
            $status = 400;
            $body = "    <p class=\"error\">Upload failed (PHP upload error {$code}).</p>\n" . $body;
        } else {
            $name = h((string)$file['name']);
            $size = (int)$file['size'];
            $md5 = md5_file($file['tmp_name']);
            $body = <<<HTML
                <h2>Received</h2>
                <dl class="upload">
                  <dt>name</dt><dd class="name">{$name}</dd>
                  <dt>size</dt><dd class="size">{$size}</dd>
                  <dt>md5</dt><dd class="md5">{$md5}</dd>
                </dl>

            HTML . $body;
        }
    }
    page('Upload', $body, $status);
}

// Route on the raw (still percent-encoded) path, so an encoded "/" inside a name stays in the name.
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);
$path = is_string($path) ? $path : '/';
$method = $_SERVER['REQUEST_METHOD'] ?? 'GET';

if ($path === '/' || $path === '/index.php') {
    home();
} elseif (preg_match('#^/hello/([^/]+)$#', $path, $m) === 1) {
    hello(rawurldecode($m[1]));
} elseif ($path === '/form' && ($method === 'GET' || $method === 'POST')) {
    form();
} elseif ($path === '/upload' && ($method === 'GET' || $method === 'POST')) {
    upload();
} else {
    page('Not found', '    <p>No page at ' . h(rawurldecode($path)) . ".</p>\n", 404);
}

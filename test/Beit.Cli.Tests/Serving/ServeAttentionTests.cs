using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.ML.Beit.Processing;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;
using Xunit.Abstractions;

namespace Beit.Tests.Serving;

/// <summary>
/// <c>POST /v1/attention</c> of <c>beit serve</c> against <c>beit explain</c> (the same map, exactly), its errors, and the
/// page's attention panel in headless chromium (as <see cref="ServePageBrowserTests"/>).
/// </summary>
[Trait("Category", "Slow")]
public sealed class ServeAttentionTests(ITestOutputHelper output)
{
    private static ByteArrayContent Png(string path)
    {
        var content = new ByteArrayContent(File.ReadAllBytes(path));
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        return content;
    }

    private static float[] Grid(JsonElement root) =>
        root.GetProperty("map").EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => v.GetSingle())).ToArray();

    [Fact]
    public async Task AttentionEndpointAnswersAsBeitExplainAndRefusesBadRequests()
    {
        using var dir = new TempDir();
        string zip = dir.Combine("cls.zip"), chelsea = Fixtures.Preproc("chelsea.png");
        ServeImages.Run("package", Fixtures.Tiny("cls_relpos"), "--task", "image-classification", "--out", zip);
        using var explain = JsonDocument.Parse(ServeImages.Run("explain", zip, chelsea, "--method", "cls", "--layer", "1", "--json"));
        using var server = ServeProcess.Start(zip);

        var png = await server.Client.PostAsync("v1/attention", Png(chelsea));
        Assert.Equal(HttpStatusCode.OK, png.StatusCode);
        Assert.Equal("image/png", png.Content.Headers.ContentType!.MediaType);
        var heat = ImageDecoder.Decode(await png.Content.ReadAsByteArrayAsync(), "heat map");
        var image = ImageDecoder.Decode(chelsea);
        Assert.Equal((image.Width, image.Height), (heat.Width, heat.Height));

        var json = await server.Client.PostAsync("v1/attention?format=json&method=cls&layer=1", Png(chelsea));
        Assert.Equal(HttpStatusCode.OK, json.StatusCode);
        using var answer = JsonDocument.Parse(await json.Content.ReadAsStringAsync());
        Assert.Equal(["method", "layer", "height", "width", "map"], answer.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(Grid(explain.RootElement), Grid(answer.RootElement));

        foreach (var (query, expected) in new[]
        {
            ("?method=gradcam", "method must be rollout or cls"),
            ("?layer=4", "layer must be between 0 and 3"),
            ("?layer=-1", "layer must be a whole number"),
            ("?format=gif", "format must be png or json"),
        })
        {
            var bad = await server.Client.PostAsync("v1/attention" + query, Png(chelsea));
            string body = await bad.Content.ReadAsStringAsync();
            output.WriteLine($"{query} → {(int)bad.StatusCode} {body}");
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains(expected, JsonDocument.Parse(body).RootElement.GetProperty("error").GetString());
        }
        var notImage = new ByteArrayContent("not an image"u8.ToArray());
        notImage.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        Assert.Equal(HttpStatusCode.BadRequest, (await server.Client.PostAsync("v1/attention", notImage)).StatusCode);
    }

    [Fact]
    public void ThePageShowsTheAttentionHeatMap()
    {
        const string Chromium = "/usr/bin/chromium", ChromeDriver = "/usr/bin/chromedriver";
        Assert.True(File.Exists(Chromium) && File.Exists(ChromeDriver), $"{Chromium} and {ChromeDriver} are needed: apt-get install chromium chromium-driver");
        using var dir = new TempDir();
        string image = Fixtures.Preproc("chelsea.png");
        // A checkpoint folder this time: the server exports the attention graph itself.
        using var server = ServeProcess.Start(Fixtures.Tiny("cls_relpos"));
        var options = new ChromeOptions { BinaryLocation = Chromium };
        options.AddArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
            "--window-size=1100,1400", "--user-data-dir=" + dir.Combine("profile"));
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(ChromeDriver)!, Path.GetFileName(ChromeDriver));
        service.SuppressInitialDiagnosticInformation = true;
        using var browser = new ChromeDriver(service, options, TimeSpan.FromSeconds(120));
        browser.Navigate().GoToUrl(server.BaseAddress);
        var wait = new WebDriverWait(browser, TimeSpan.FromSeconds(60));
        wait.Until(b => b.FindElement(By.Id("model-info")).Text.Contains("labels"));
        browser.FindElement(By.Id("file-input")).SendKeys(image);
        IWebElement Finished(string method) => wait.Until(b => b.FindElements(By.CssSelector(
            $"#panel-attention[data-method='{method}'][data-state='done'], #panel-attention[data-state='error']")).FirstOrDefault())!;
        var section = Finished("rollout");
        Assert.Equal("done", section.GetAttribute("data-state"));
        var decoded = ImageDecoder.Decode(image);
        var map = section.FindElement(By.Id("attention-map"));
        Assert.Equal(decoded.Width.ToString(), map.GetAttribute("naturalWidth"));
        Assert.Equal(decoded.Height.ToString(), map.GetAttribute("naturalHeight"));
        string? rolloutSrc = map.GetAttribute("src");

        // Switching to the CLS map asks the server again and shows another picture.
        section.FindElement(By.CssSelector("#attention-method option[value='cls']")).Click();
        section = Finished("cls");
        Assert.Equal("done", section.GetAttribute("data-state"));
        Assert.NotEqual(rolloutSrc, section.FindElement(By.Id("attention-map")).GetAttribute("src"));
        string shot = Path.Combine(Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "artifacts")).FullName, "serve-page-attention.png");
        browser.GetScreenshot().SaveAsFile(shot);
        output.WriteLine($"screenshot: {shot}");
        browser.Quit();
    }
}
